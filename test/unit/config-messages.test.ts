import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pushTarget } from '../../src/cli/dovecot-config.js';
import { ConfigError, didYouMean, loadConfig } from '../../src/config.js';

/** What a refused setting says: what is allowed, where it came from, and the near match for a typo. */

const problems = (env: Record<string, string>): string[] => {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
};

function withYaml(text: string, fn: (file: string) => void) {
  const dir = mkdtempSync(join(tmpdir(), 'mailsight-yaml-'));
  try {
    const file = join(dir, 'config.yml');
    writeFileSync(file, text);
    fn(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('configuration messages', () => {
  it('every refused value says what is allowed', () => {
    expect(problems({ DRY_RUN: 'nope' })).toEqual(['DRY_RUN: must be true or false (or 1/0, yes/no) (got "nope")']);
    expect(problems({ IMAP_PORT: 'seventy' })).toEqual(['IMAP_PORT: must be a whole number from 1 to 65,535 (got "seventy")']);
    expect(problems({ LLM_BATCH_SIZE: '0' })).toEqual(['LLM_BATCH_SIZE: must be a whole number from 1 to 1,000 (got "0")']);
    expect(problems({ LOG_LEVEL: 'loud' })[0]).toMatch(/^LOG_LEVEL: .*"fatal"\|"error"\|"warn"\|"info"\|"debug"\|"trace"\|"silent"/);
  });

  it(".env.example's placeholder secrets are refused, each by its name", () => {
    const example = readFileSync(new URL('../../.env.example', import.meta.url), 'utf8');
    const value = (name: string) => new RegExp(`^#?\\s*${name}=(.*)$`, 'm').exec(example)![1]!.trim();
    expect(problems({ PUSH_PASSWORD: value('PUSH_PASSWORD') })).toEqual(["PUSH_PASSWORD: is still the example's placeholder: set a secret of your own"]);
    expect(problems({ IMAP_MASTER_USER: 'mailsight', IMAP_MASTER_PASSWORD: value('IMAP_MASTER_PASSWORD') })).toEqual([
      "IMAP_MASTER_PASSWORD: is still the example's placeholder: set a secret of your own",
    ]);
    expect(problems({ DATABASE_URL: value('DATABASE_URL') })).toEqual(["DATABASE_URL: holds the example's placeholder password: set the database's real one"]);
    expect(problems({ PUSH_PASSWORD: 'CHANGE_ME' })).toHaveLength(1);
    // A real secret that merely contains the words is fine.
    expect(problems({ PUSH_PASSWORD: 'please-change-me-never', API_KEY: 'changemeplease-0123456789' })).toEqual([]);
  });

  it("YAML errors name the file's key, not an environment variable; the environment's own name its variable", () => {
    withYaml('ollama:\n  model: ""\nprocessing:\n  batch_size: 0\ndry_run: nope\nactions:\n  junk_threshold: 2\n', (file) => {
      const got = problems({ CONFIG_FILE: file });
      expect(got).toEqual([
        `${file}: ollama.model: Too small: expected string to have >=1 characters (got "")`,
        `${file}: processing.batch_size: must be a whole number from 1 to 1,000 (got 0)`,
        `${file}: dry_run: must be true or false (or 1/0, yes/no) (got "nope")`,
        `${file}: actions.junk_threshold: Too big: expected number to be <=1 (got 2)`,
      ]);
      expect(problems({ CONFIG_FILE: file, LLM_BATCH_SIZE: '0' })).toContain('LLM_BATCH_SIZE: must be a whole number from 1 to 1,000 (got "0")');
    });
  });

  it('unknown YAML keys are reported, with "did you mean" for a near match', () => {
    withYaml('ollama:\n  hots: gpu:11434\nprocesing:\n  interval: 30\nfrobnicate: 1\n', (file) => {
      expect(problems({ CONFIG_FILE: file })).toEqual([
        `${file}: ollama.hots: unknown key; did you mean host?`,
        `${file}: procesing: unknown key; did you mean processing?`,
        `${file}: frobnicate: unknown key (known: ollama, processing, performance, imap, dry_run, folders, rules, actions)`,
      ]);
    });
    expect(didYouMean('moddel', ['model', 'host'])).toBe('model');
    expect(didYouMean('zzz', ['model', 'host'])).toBeUndefined();
  });
});

describe('dovecot-config --url', () => {
  it('without a scheme means http://', () => {
    expect(pushTarget('127.0.0.1:8080')).toEqual({ url: 'http://127.0.0.1:8080', credentials: null });
    expect(pushTarget('mailsight:8080')).toEqual({ url: 'http://mailsight:8080', credentials: null });
  });

  it('uses credentials written into it (decoded), and refuses half of them', () => {
    expect(pushTarget('http://bob:s%25cret@mail:8080/ignored')).toEqual({ url: 'http://mail:8080', credentials: { username: 'bob', password: 's%cret' } });
    expect(() => pushTarget('http://bob@mail:8080')).toThrow(/names the user bob but no password/);
    expect(() => pushTarget('ftp://mail')).toThrow(/http\(s\)/);
  });
});
