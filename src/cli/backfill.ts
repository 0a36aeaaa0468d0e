import { parseArgs } from 'node:util';
import { loadConfig } from '../config.js';
import { createLogger } from '../logger.js';
import { ImapSessions } from '../mail/imap.js';
import { backfillMailbox, parseSince, type BackfillProgress } from '../queue/backfill.js';
import { QueueWaker } from '../queue/wake.js';
import { cliMailbox, out, readInput, UsageError, withDatabase } from './common.js';

const BACKFILL_HELP = `usage: mailsight backfill (--mailbox <user@example.org> ... | --mailboxes-file <file>)
                          [--folder INBOX] [--since 30d] [--batch-size 500]

Queues existing mail for analysis through the IMAP master user (source backfill: after live mail
and API requests). --since takes 12h, 30d, 2w or an ISO date (by the server's arrival date); without
it, the whole folder. A progress bar on a terminal, plain lines otherwise. Safe to interrupt
(Ctrl-C) and run again: what is queued already is not queued twice. The running service picks the
jobs up (at once on PostgreSQL; with the embedded database, stop the service first and start it after).`;

/** Progress for a terminal (one redrawn line) or a log (a line every few seconds). */
function progressPrinter() {
  const tty = process.stdout.isTTY;
  const started = Date.now();
  let lastLine = 0;
  return (p: BackfillProgress, final = false) => {
    const secs = (Date.now() - started) / 1000;
    const rate = p.done / Math.max(secs, 0.001);
    const eta = rate > 0 ? Math.round((p.total - p.done) / rate) : 0;
    const text = `${p.mailbox}: ${p.done}/${p.total} looked at, ${p.queued} queued, ${Math.round(rate)}/s${final ? '' : `, ETA ${eta}s`}`;
    if (tty) {
      const width = 24;
      const filled = p.total ? Math.round((width * p.done) / p.total) : width;
      process.stdout.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${text}\x1b[K${final ? '\n' : ''}`);
    } else if (final || Date.now() - lastLine > 2000) {
      lastLine = Date.now();
      out(text);
    }
  };
}

export async function backfillCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      mailbox: { type: 'string', multiple: true },
      'mailboxes-file': { type: 'string' },
      folder: { type: 'string', default: 'INBOX' },
      since: { type: 'string' },
      'batch-size': { type: 'string', default: '500' },
      help: { type: 'boolean' },
    },
  });
  if (values.help) {
    out(BACKFILL_HELP);
    return 0;
  }
  const mailboxes = [...(values.mailbox ?? [])];
  if (values['mailboxes-file']) {
    const text = (await readInput(values['mailboxes-file'])).toString('utf8');
    mailboxes.push(...text.split(/\r?\n/).map((l) => l.replace(/#.*/, '').trim()).filter(Boolean));
  }
  if (mailboxes.length === 0) throw new UsageError('backfill needs --mailbox <user@example.org> or --mailboxes-file <file>');
  // One name per mailbox (mail/mailbox-name.ts); duplicates in another case go once.
  const canonical = [...new Set(mailboxes.map(cliMailbox))];
  mailboxes.splice(0, mailboxes.length, ...canonical);
  let since: Date | undefined;
  try {
    since = values.since ? parseSince(values.since) : undefined;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const batchSize = Number(values['batch-size']);
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 10_000) throw new UsageError('--batch-size must be a whole number from 1 to 10000');
  const config = loadConfig();
  const logger = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel);
  const imap = new ImapSessions(config.imap, logger);
  if (!imap.configured) throw new UsageError('backfill needs IMAP_MASTER_USER and IMAP_MASTER_PASSWORD');
  const stop = new AbortController();
  process.once('SIGINT', () => stop.abort());
  process.once('SIGTERM', () => stop.abort());
  let failed = 0;
  let interrupted = false;
  await withDatabase(async (db) => {
    const waker = new QueueWaker(db, logger);
    try {
      for (const mailbox of mailboxes) {
        if (stop.signal.aborted) break;
        const show = progressPrinter();
        try {
          const r = await backfillMailbox(db, imap, mailbox, {
            folder: values.folder!,
            since,
            batchSize,
            signal: stop.signal,
            onProgress: (p) => show(p),
            onQueued: () => waker.signal(),
          });
          if (r.missingFolder) {
            failed++;
            process.stderr.write(`mailsight: ${mailbox} has no folder ${values.folder}\n`);
          } else show({ mailbox, done: r.total, total: r.total, queued: r.queued }, true);
          if (r.interrupted) interrupted = true;
        } catch (err) {
          failed++;
          process.stderr.write(`mailsight: ${mailbox}: ${(err as Error).message}\n`);
        }
      }
    } finally {
      await imap.close();
      await waker.close();
    }
  });
  if (interrupted || stop.signal.aborted) {
    out('interrupted: run the same command again to queue the rest');
    return 3;
  }
  return failed ? 1 : 0;
}
