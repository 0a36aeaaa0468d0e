import { parseArgs } from 'node:util';
import { checkDeployment } from './deployment-check.js';
import { ConfigError, loadConfig } from '../config.js';
import { createLogger } from '../logger.js';
import { out } from './common.js';

const CHECK_HELP = `usage: mailsight check [--mailbox <user@example.org>] [--url <http://host:port>]

Tries each part of a deployment once, as configured (environment and CONFIG_FILE): the
configuration, the database, the IMAP master login (as --mailbox), Ollama and its model, and the
running service's push endpoint with the push credentials (--url: where it listens). Prints what
works and, for what does not, the fix. Exit code 0 when everything works, 1 otherwise.`;

export async function checkCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { mailbox: { type: 'string' }, url: { type: 'string' }, help: { type: 'boolean' } } });
  if (values.help) {
    out(CHECK_HELP);
    return 0;
  }
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    out(`✗ configuration: ${err.problems.length} problem(s)`);
    for (const p of err.problems) out(`    ${p}`);
    out('    fix: correct these settings (README.md, Configuration)');
    return 1;
  }
  const results = await checkDeployment(config, createLogger('silent'), { mailbox: values.mailbox, url: values.url });
  for (const r of results) {
    out(`${r.ok ? '✓' : '✗'} ${r.name}: ${r.detail}`);
    if (r.fix) out(`    fix: ${r.fix}`);
  }
  return results.every((r) => r.ok) ? 0 : 1;
}
