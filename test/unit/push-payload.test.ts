import { describe, expect, it } from 'vitest';
import { decodeHeader, parsePushBody } from '../../src/push/payload.js';

// The OX driver's body exactly as Dovecot 2.3.19 sends it (shared/dovecot-notes.md).
const OX = {
  user: 'alice@example.test',
  event: 'messageNew',
  folder: 'INBOX',
  'imap-uidvalidity': 1795249885,
  'imap-uid': 1,
  from: 'Sender Name <sender@example.test>',
  subject: 'Final check',
  snippet: 'This is the body snippet line one. Second line of the body.',
  unseen: 1,
};

const LUA = {
  driver: 'lua',
  event: 'MessageNew',
  user: 'bob@example.test',
  folder: 'Lists/dev',
  uidvalidity: 1700000000,
  uid: 42,
  message_id: '<abc@example.test>',
  from: 'List <list@example.test>',
  subject: 'Weekly digest',
};

function problems(body: unknown): string[] {
  const r = parsePushBody(body);
  if (r.ok) throw new Error('expected a validation failure');
  return r.problems;
}

describe('OX driver body', () => {
  it('normalises to a message key and an enqueue action', () => {
    const r = parsePushBody(OX);
    expect(r).toEqual({
      ok: true,
      event: {
        driver: 'ox',
        event: 'messageNew',
        action: 'enqueue',
        mailbox: 'alice@example.test',
        folder: 'INBOX',
        uidvalidity: 1795249885,
        uid: 1,
        from: 'Sender Name <sender@example.test>',
        subject: 'Final check',
      },
    });
  });

  it('accepts a body without from and subject (Dovecot drops missing headers)', () => {
    const { from, subject, snippet, unseen, ...bare } = OX;
    const r = parsePushBody(bare);
    expect(r.ok && r.event.from === undefined && r.event.subject === undefined).toBe(true);
  });

  it('decodes RFC 2047 encoded words in from and subject', () => {
    const r = parsePushBody({
      ...OX,
      from: '=?UTF-8?B?SsO8cmdlbiBNw7xsbGVy?= <jm@example.test>',
      subject: '=?ISO-8859-1?Q?Gr=FC=DFe_aus_K=F6ln?=',
    });
    expect(r.ok && r.event.from).toBe('Jürgen Müller <jm@example.test>');
    expect(r.ok && r.event.subject).toBe('Grüße aus Köln');
  });

  it('accepts UIDs as digit strings, and the 32-bit maximum', () => {
    const r = parsePushBody({ ...OX, 'imap-uid': '4294967295', 'imap-uidvalidity': '7' });
    expect(r.ok && [r.event.uid, r.event.uidvalidity]).toEqual([4294967295, 7]);
  });

  it('defaults a missing event name to messageNew (older OX drivers)', () => {
    const { event, ...rest } = OX;
    const r = parsePushBody(rest);
    expect(r.ok && r.event.action).toBe('enqueue');
  });
});

describe('Lua script body', () => {
  it('keeps folder, message-id and the event name', () => {
    const r = parsePushBody(LUA);
    expect(r.ok && r.event).toMatchObject({
      driver: 'lua',
      action: 'enqueue',
      mailbox: 'bob@example.test',
      folder: 'Lists/dev',
      uidvalidity: 1700000000,
      uid: 42,
      messageId: '<abc@example.test>',
    });
  });

  it.each([
    ['MessageNew', 'enqueue'],
    ['MessageAppend', 'enqueue'],
    ['MessageExpunge', 'expunge'],
    ['FlagsSet', 'flags'],
    ['FlagsClear', 'flags'],
    ['MessageRead', 'ignore'],
  ])('maps %s to %s', (event, action) => {
    const r = parsePushBody({ ...LUA, event });
    expect(r.ok && r.event.action).toBe(action);
  });

  it('carries the keywords of a flag event, and refuses ones that are not IMAP atoms', () => {
    const r = parsePushBody({ ...LUA, event: 'FlagsSet', keywords: ['$Junk', 'NonJunk'] });
    expect(r.ok && r.event.keywords).toEqual(['$Junk', 'NonJunk']);
    for (const keywords of [['two words'], [''], 'not-a-list', ['x'.repeat(256)]]) {
      const bad = parsePushBody({ ...LUA, event: 'FlagsSet', keywords });
      expect(bad.ok, JSON.stringify(keywords)).toBe(false);
    }
  });
});

describe('rejects', () => {
  it.each([
    ['an array', [OX], 'body must be a JSON object'],
    ['null', null, 'body must be a JSON object'],
    ['a string', 'hello', 'body must be a JSON object'],
    ['a missing user', { ...OX, user: undefined }, 'user: user is required'],
    ['an empty user', { ...OX, user: '  ' }, 'user: user must not be empty'],
    ['a numeric user', { ...OX, user: 5 }, 'user: user must be a string'],
    ['a user with a newline', { ...OX, user: 'alice\n@x' }, 'user: user contains control characters'],
    ['a user of 300 characters', { ...OX, user: 'a'.repeat(300) }, 'user: user is longer than 255 characters'],
    ['a folder with NUL', { ...OX, folder: 'IN\u0000BOX' }, 'folder: folder contains control characters'],
    ['uid 0', { ...OX, 'imap-uid': 0 }, 'imap-uid: imap-uid must be at least 1'],
    ['a negative uid', { ...OX, 'imap-uid': -3 }, 'imap-uid: imap-uid must be at least 1'],
    ['a fractional uid', { ...OX, 'imap-uid': 1.5 }, 'imap-uid: imap-uid must be a whole number'],
    ['a uid over 32 bits', { ...OX, 'imap-uid': 4294967296 }, 'imap-uid: imap-uid must fit in 32 bits'],
    ['a uid string with letters', { ...OX, 'imap-uid': '12a' }, 'imap-uid: imap-uid must be a whole number'],
    ['a missing uidvalidity', { ...OX, 'imap-uidvalidity': undefined }, 'imap-uidvalidity: imap-uidvalidity is required'],
    ['a Lua body without uid', { ...LUA, uid: undefined }, 'uid: uid is required'],
  ])('%s', (_name, body, message) => {
    expect(problems(body)).toContain(message);
  });

  it('lists every problem at once', () => {
    expect(problems({ user: '', folder: 3 })).toHaveLength(4);
  });
});

describe('hostile header values', () => {
  it('strips control characters and unfolds', () => {
    expect(decodeHeader('Hello\r\n\tWorld\u0007!')).toBe('Hello World !');
  });
  it('cuts an over-long value to 998 characters', () => {
    expect(decodeHeader('x'.repeat(5000))).toHaveLength(998);
  });
  it('keeps a broken encoded word as text', () => {
    expect(decodeHeader('=?UTF-8?B?####?=')).toBeTypeOf('string');
  });
  it('drops a value that is only white space', () => {
    expect(decodeHeader(' \t ')).toBeUndefined();
  });
});
