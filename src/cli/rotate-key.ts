import { parseArgs } from 'node:util';
import { loadConfig } from '../config.js';
import { createLogger } from '../logger.js';
import { checkKeys } from '../privacy/keys.js';
import { protectionFor } from '../privacy/protection.js';
import { rotateKeys } from '../privacy/rotate.js';
import { out, UsageError, withDatabase } from './common.js';

const ROTATE_HELP = `usage: mailsight rotate-key [--batch-size 500]

Re-seals every stored subject, sender and analysis with ENCRYPTION_KEY (the new key). Rows sealed
with an earlier key need that key in ENCRYPTION_KEY_PREVIOUS; plaintext rows from before a key was
set are sealed too. Works in batches, one transaction each: interrupt it at any time and run it
again to continue. When it completes, the earlier key is no longer needed.
With the embedded database, stop the service first; on PostgreSQL it runs beside the service.`;

export async function rotateKeyCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { 'batch-size': { type: 'string' }, help: { type: 'boolean' } } });
  if (values.help) {
    out(ROTATE_HELP);
    return 0;
  }
  const batchSize = Number(values['batch-size'] ?? 500);
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 100_000) throw new UsageError('--batch-size must be a whole number from 1 to 100000');
  const config = loadConfig();
  const protection = protectionFor(config);
  if (!protection.sealer) throw new UsageError('rotate-key needs ENCRYPTION_KEY (the new key); put the old one in ENCRYPTION_KEY_PREVIOUS');
  const stop = new AbortController();
  process.once('SIGINT', () => stop.abort());
  process.once('SIGTERM', () => stop.abort());
  const report = await withDatabase(async (db) => {
    // Every key the data is sealed with must be at hand, or those rows could not be re-sealed.
    await checkKeys(db, protection.sealer, createLogger('warn'));
    return rotateKeys(db, protection, {
      batchSize,
      signal: stop.signal,
      onBatch: (p) => out(`${p.table}: ${p.done} re-sealed`),
    });
  });
  if (report.stillSealingWithOld.length > 0) {
    out(`not done: every stored row is re-sealed, but these running instances still seal new content with an old key:`);
    for (const i of report.stillSealingWithOld) out(`  ${i.id}: key ${i.keyId ?? '(none: plaintext)'}, last seen ${i.at.toISOString()}`);
    out(`restart them with ENCRYPTION_KEY=<the new key> (and the old one in ENCRYPTION_KEY_PREVIOUS), then run mailsight rotate-key again`);
    return 4;
  }
  if (!report.complete) {
    out(`interrupted: run mailsight rotate-key again to continue`);
    return 3;
  }
  out(`done: ${report.analyses} analyses, ${report.queue} queue rows, ${report.audit} audit entries, ${report.senders} learned senders sealed with key ${protection.sealer.currentId}`);
  return 0;
}
