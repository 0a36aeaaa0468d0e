// `npm run bench [name...]`: runs the named benchmarks (default: all) and writes bench/results/*.json.
import { runApiBench } from './api.js';
import { runCampaignBench } from './campaign.js';
import { runDataBench } from './data.js';
import { runDovecotBench } from './dovecot.js';
import { runFairnessBench } from './fairness.js';
import { runPipelineBench } from './pipeline.js';
import { runPushBench } from './push.js';
import { runScaleBench } from './scale.js';
import { runSignalsBench } from './signals.js';
import { runStartupBench } from './startup.js';

const BENCHES: Record<string, () => Promise<void>> = {
  push: runPushBench,
  pipeline: runPipelineBench,
  api: runApiBench,
  signals: runSignalsBench,
  scale: runScaleBench,
  fairness: runFairnessBench,
  dovecot: runDovecotBench,
  data: runDataBench,
  startup: runStartupBench,
  campaign: runCampaignBench,
};

const names = process.argv.slice(2).filter((a) => !a.startsWith('-'));
for (const name of names.length ? names : Object.keys(BENCHES)) {
  const bench = BENCHES[name];
  if (!bench) {
    console.error(`unknown benchmark ${name}; known: ${Object.keys(BENCHES).join(', ')}`);
    process.exit(2);
  }
  console.log(`\n=== ${name}`);
  await bench();
}
process.exit(0);
