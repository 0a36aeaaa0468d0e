import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { formatLine, logDestination } from '../../src/log-format.js';
import { createLogger } from '../../src/logger.js';

/** A stream that says whether it is a terminal, and keeps what was written. */
function stream(isTTY: boolean) {
  const s = Object.assign(new PassThrough(), { isTTY });
  const chunks: string[] = [];
  s.on('data', (c) => chunks.push(String(c)));
  return { s, text: () => chunks.join('') };
}

describe('LOG_FORMAT', () => {
  it('auto: lines for people on a terminal, JSON otherwise; json and pretty force either', () => {
    expect(logDestination('auto', stream(true).s)).toBeDefined();
    expect(logDestination('auto', stream(false).s)).toBeUndefined();
    expect(logDestination('json', stream(true).s)).toBeUndefined();
    expect(logDestination('pretty', stream(false).s)).toBeDefined();
    expect(loadConfig({}).logFormat).toBe('auto');
    expect(loadConfig({ LOG_FORMAT: 'json' }).logFormat).toBe('json');
    expect(() => loadConfig({ LOG_FORMAT: 'xml' })).toThrow(/LOG_FORMAT: .*"auto"\|"json"\|"pretty"/);
  });

  it('a pretty line: time, level, message and the fields, redaction kept', async () => {
    const out = stream(false);
    const logger = createLogger('info', logDestination('pretty', out.s));
    logger.info({ mailbox: 'alice@example.org', uid: 7, password: 'secret', err: 'a b' }, 'push');
    await new Promise((r) => setImmediate(r));
    expect(out.text()).toMatch(/^\d{2}:\d{2}:\d{2}\.\d{3} INFO  push mailbox=alice@example\.org uid=7 password=\[redacted\] err="a b"\n$/);
  });

  it('passes a line that is not JSON through', () => {
    expect(formatLine('plain text')).toBe('plain text\n');
  });
});
