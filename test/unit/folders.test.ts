import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { FolderFilter } from '../../src/mail/folders.js';

describe('FolderFilter', () => {
  const byDefault = new FolderFilter();

  it.each(['INBOX', 'Lists', 'Projects/2026', 'Archive', 'Sentinel', 'Trash talk'])('analyses %s by default', (folder) => {
    expect(byDefault.decide(folder)).toEqual({ analyse: true });
  });

  it.each([
    ['Drafts', '\\Drafts'],
    ['Sent', '\\Sent'],
    ['Sent Items', '\\Sent'],
    ['Gesendete Elemente', '\\Sent'],
    ['Trash', '\\Trash'],
    ['Deleted Items', '\\Trash'],
    ['Junk', '\\Junk'],
    ['Spam', '\\Junk'],
    ['INBOX/Spam', '\\Junk'],
    ['INBOX.Junk E-mail', '\\Junk'],
  ])('leaves out %s by its usual name (%s) when the server has not said', (folder, flag) => {
    expect(byDefault.decide(folder)).toEqual({ analyse: false, reason: `folder ${folder} is excluded (FOLDERS_EXCLUDE ${flag})` });
  });

  it("goes by the server's SPECIAL-USE marks when it knows them, over names", () => {
    expect(byDefault.decide('Quarantine', ['\\Junk'])).toMatchObject({ analyse: false });
    // A folder called Spam that the server does not mark is a user's own folder.
    expect(byDefault.decide('Spam', [])).toEqual({ analyse: true });
  });

  it('takes names with * and an include list', () => {
    const f = new FolderFilter(['INBOX', 'Clients/*'], ['Clients/Old*']);
    expect(f.decide('INBOX')).toEqual({ analyse: true });
    expect(f.decide('clients/acme')).toEqual({ analyse: true });
    expect(f.decide('Clients/Old 2019')).toMatchObject({ analyse: false, reason: expect.stringContaining('FOLDERS_EXCLUDE Clients/Old*') });
    expect(f.decide('Lists')).toEqual({ analyse: false, reason: 'folder Lists is not in FOLDERS_INCLUDE' });
    // Regular-expression characters in a name are plain characters.
    expect(new FolderFilter([], ['a.b']).decide('axb')).toEqual({ analyse: true });
  });
});

describe('FOLDERS_INCLUDE / FOLDERS_EXCLUDE', () => {
  it('default to every folder but Drafts, Sent, Trash and Junk; take lists from the environment and YAML', () => {
    expect(loadConfig({}).folders).toEqual({ include: [], exclude: ['\\Drafts', '\\Sent', '\\Trash', '\\Junk'] });
    expect(loadConfig({ FOLDERS_EXCLUDE: '\\Trash, \\junk ,Archive/*', FOLDERS_INCLUDE: 'INBOX' }).folders).toEqual({ include: ['INBOX'], exclude: ['\\Trash', '\\junk', 'Archive/*'] });
    expect(loadConfig({ FOLDERS_EXCLUDE: 'none' }).folders.exclude).toEqual([]);
  });

  it('come from the YAML file as lists', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mailsight-folders-'));
    try {
      const file = join(dir, 'config.yml');
      writeFileSync(file, 'folders:\n  include: [INBOX, "Clients/*"]\n  exclude: ["\\\\Trash"]\n');
      expect(loadConfig({ CONFIG_FILE: file }).folders).toEqual({ include: ['INBOX', 'Clients/*'], exclude: ['\\Trash'] });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuse a flag that is not SPECIAL-USE, naming the variable', () => {
    expect(() => loadConfig({ FOLDERS_EXCLUDE: '\\Spam' })).toThrow(/FOLDERS_EXCLUDE: \\Spam is not a SPECIAL-USE flag/);
  });
});
