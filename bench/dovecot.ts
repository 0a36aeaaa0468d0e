// Dovecot 2.4 against 2.3 (issue: Dovecot 2.4 for real): `npm run bench dovecot`.
// The same 200 corpus deliveries, OX driver, through each version's Dovecot configured with the
// shipped snippets: time from the start of the LMTP delivery to the stored analysis, p50 and p95.
import { emailAnalysis } from '../src/db/schema.js';
import { loadCorpus } from '../test/support/corpus.js';
import { DOVECOT_VERSIONS, dovecotAvailable, type DovecotVersion } from '../test/support/dovecot.js';
import { LmtpClient } from '../test/support/lmtp.js';
import { startStack } from '../test/support/stack.js';
import { median, percentile, table, writeResult } from './lib.js';

const MESSAGES = Number(process.env.BENCH_DOVECOT_MESSAGES ?? 200);
const REPEATS = Number(process.env.BENCH_DOVECOT_REPEATS ?? 3);
const USERS = Array.from({ length: 10 }, (_, i) => `user${i + 1}@example.test`);

interface Run {
  version: DovecotVersion;
  p50Ms: number;
  p95Ms: number;
  maxMs: number;
  /** Delivery alone: LMTP DATA to its answer, which includes Dovecot's wait for the push. */
  deliveryP50Ms: number;
  seconds: number;
}

async function once(version: DovecotVersion): Promise<Run> {
  const stack = await startStack({ users: USERS, dovecot: { version } });
  try {
    const corpus = loadCorpus(MESSAGES);
    // One LMTP connection, one message at a time, round-robin over the mailboxes: in each mailbox the
    // UIDs follow the order of delivery, so (mailbox, uid) names the delivery.
    const started = new Map<string, number>();
    const deliveryMs: number[] = [];
    const t0 = performance.now();
    const lmtp = await LmtpClient.connect(stack.dc.lmtpPort);
    const nextUid = new Map<string, number>();
    for (const [i, m] of corpus.entries()) {
      const user = USERS[i % USERS.length]!;
      const uid = (nextUid.get(user) ?? 0) + 1;
      nextUid.set(user, uid);
      const at = Date.now();
      started.set(`${user}/${uid}`, at);
      const d0 = performance.now();
      await lmtp.deliver(m.raw, [user]);
      deliveryMs.push(performance.now() - d0);
    }
    lmtp.close();
    let rows: { mailbox: string; uid: number; createdAt: Date }[] = [];
    const deadline = Date.now() + 120_000;
    while (rows.length < corpus.length && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      rows = await stack.db.orm.select({ mailbox: emailAnalysis.mailbox, uid: emailAnalysis.uid, createdAt: emailAnalysis.createdAt }).from(emailAnalysis);
    }
    if (rows.length < corpus.length) throw new Error(`Dovecot ${version}: ${rows.length} of ${corpus.length} analysed within 120 s`);
    const seconds = (performance.now() - t0) / 1000;
    const latencies = rows.map((r) => r.createdAt.getTime() - started.get(`${r.mailbox}/${r.uid}`)!).sort((a, b) => a - b);
    deliveryMs.sort((a, b) => a - b);
    return {
      version,
      p50Ms: percentile(latencies, 50),
      p95Ms: percentile(latencies, 95),
      maxMs: latencies.at(-1)!,
      deliveryP50Ms: percentile(deliveryMs, 50),
      seconds,
    };
  } finally {
    await stack.close();
  }
}

export async function runDovecotBench() {
  const versions = DOVECOT_VERSIONS.filter((v) => dovecotAvailable(v));
  if (versions.length < 2) throw new Error('needs root, Dovecot 2.3 and the 2.4 root (test/support/dovecot-2.4-root.sh)');
  const runs: Run[] = [];
  // Alternating order, so a machine that slows down over the run does not favour one version.
  for (let r = 0; r < REPEATS; r++) {
    for (const v of r % 2 === 0 ? versions : [...versions].reverse()) runs.push(await once(v));
  }
  const summary = versions.map((version) => {
    const mine = runs.filter((x) => x.version === version);
    const p50s = mine.map((x) => x.p50Ms);
    const p95s = mine.map((x) => x.p95Ms);
    return {
      version,
      p50Ms: median(p50s),
      p50Spread: `${Math.min(...p50s).toFixed(1)}-${Math.max(...p50s).toFixed(1)}`,
      p95Ms: median(p95s),
      p95Spread: `${Math.min(...p95s).toFixed(1)}-${Math.max(...p95s).toFixed(1)}`,
      deliveryP50Ms: median(mine.map((x) => x.deliveryP50Ms)),
      seconds: median(mine.map((x) => x.seconds)),
    };
  });
  console.log(`${MESSAGES} corpus deliveries, OX driver, delivery start to stored analysis (median of ${REPEATS} runs, spread min-max):`);
  table(summary);
  const [a, b] = summary;
  const ratio = { p50: b!.p50Ms / a!.p50Ms, p95: b!.p95Ms / a!.p95Ms };
  console.log(`2.4 / 2.3: p50 ${ratio.p50.toFixed(2)}x, p95 ${ratio.p95.toFixed(2)}x`);
  console.log(`results: ${writeResult('dovecot', { messages: MESSAGES, repeats: REPEATS, summary, ratio, runs })}`);
}
