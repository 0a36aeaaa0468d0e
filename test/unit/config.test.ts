import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('has the defaults of design.md', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      port: 8080,
      host: '0.0.0.0',
      dataDir: './data',
      push: { username: 'dovecot', auth: 'basic' },
      imap: { host: '127.0.0.1', port: 143, secure: false, masterSeparator: '*' },
      llm: { host: 'http://127.0.0.1:11434', model: 'llama3.2:3b' },
      processing: { intervalSec: 60, batchSize: 10, concurrentJobs: 2, maxEmailSize: 4000 },
      dryRun: true,
      logLevel: 'info',
    });
    expect(c.databaseUrl).toBeUndefined();
  });

  it('accepts OLLAMA_HOST as host:port without a scheme, as the seed writes it', () => {
    expect(loadConfig({ OLLAMA_HOST: 'ollama:11434' }).llm.host).toBe('http://ollama:11434');
  });

  it('lists every problem in one error, naming the variables', () => {
    const err = configError({ PORT: 'eighty', LLM_BATCH_SIZE: '0', DRY_RUN: 'maybe', DATABASE_URL: 'mysql://x' });
    expect(err.problems).toHaveLength(4);
    expect(err.message).toContain('PORT');
    expect(err.message).toContain('LLM_BATCH_SIZE');
    expect(err.message).toContain('DRY_RUN');
    expect(err.message).toContain('DATABASE_URL');
  });

  it('never echoes a secret value in an error', () => {
    const err = configError({ API_KEY: 'short' });
    expect(err.message).toContain('API_KEY');
    expect(err.message).not.toContain('short"');
  });

  it('requires the master user and its password together', () => {
    expect(configError({ IMAP_MASTER_USER: 'mailsight' }).message).toContain('IMAP_MASTER_PASSWORD');
  });

  it('reads secrets from NAME_FILE', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
    writeFileSync(join(dir, 'pw'), 's3cret-from-file\n');
    expect(loadConfig({ PUSH_PASSWORD_FILE: join(dir, 'pw') }).push.password).toBe('s3cret-from-file');
    expect(configError({ PUSH_PASSWORD_FILE: join(dir, 'missing') }).message).toContain('PUSH_PASSWORD_FILE');
  });

  it('reads the seed YAML layout, and the environment wins over it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
    const file = join(dir, 'config.yml');
    writeFileSync(
      file,
      [
        'ollama:',
        '  model: qwen2.5:7b',
        '  host: gpu-box:11434',
        'processing:',
        '  batch_size: 25',
        '  interval: 30',
        'performance:',
        '  max_email_size: 8000',
        '  concurrent_jobs: 4',
        'rules:',
        '  - name: trust-internal',
        '    match:',
        '      from: ["*@example.org"]',
        '    action: skip',
        '    verdict: legit',
        'actions:',
        '  move_to_junk: false',
        '  junk_threshold: 0.9',
      ].join('\n'),
    );
    const c = loadConfig({ CONFIG_FILE: file, LLM_BATCH_SIZE: '5' });
    expect(c.llm).toMatchObject({ host: 'http://gpu-box:11434', model: 'qwen2.5:7b' });
    expect(c.processing).toMatchObject({ batchSize: 5, intervalSec: 30, maxEmailSize: 8000, concurrentJobs: 4 });
    expect(c.rules).toEqual([{ name: 'trust-internal', match: { from: ['*@example.org'] }, action: 'skip', verdict: 'legit' }]);
    expect(c.actions).toEqual({ keywords: true, moveToJunk: false, junkThreshold: 0.9, junkFolder: 'Junk', markSeen: true });
  });

  it('lists every problem in the rules and actions with its place', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
    const file = join(dir, 'config.yml');
    writeFileSync(
      file,
      [
        'rules:',
        '  - name: no-conditions',
        '    match: {}',
        '    action: skip',
        '  - name: bad-regex',
        '    match:',
        '      headers: { Subject: "([" }',
        '    action: delete',
        'actions:',
        '  junk_threshold: 2',
        '  colour: red',
      ].join('\n'),
    );
    const message = configError({ CONFIG_FILE: file }).message;
    expect(message).toMatch(/rules\.0\.match: a rule needs at least one condition/);
    expect(message).toMatch(/rules\.1\.match\.headers\.Subject: must be a valid regular expression/);
    expect(message).toMatch(/rules\.1\.action/);
    expect(message).toMatch(/actions\.junk_threshold/);
    expect(message).toMatch(/actions: Unrecognized key: "colour"/);
  });

  it('reports an unreadable or broken YAML file', () => {
    expect(configError({ CONFIG_FILE: '/nonexistent/config.yml' }).message).toContain('CONFIG_FILE');
    const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
    writeFileSync(join(dir, 'bad.yml'), 'ollama: [unclosed');
    expect(configError({ CONFIG_FILE: join(dir, 'bad.yml') }).message).toContain('CONFIG_FILE');
  });

  it('turns auth off only when PUSH_AUTH=none says so', () => {
    expect(loadConfig({ PUSH_AUTH: 'none' }).push.auth).toBe('none');
    expect(configError({ PUSH_AUTH: 'off' }).message).toContain('PUSH_AUTH');
  });

  it('refuses a push user name with a colon (HTTP Basic cannot carry it)', () => {
    expect(configError({ PUSH_USERNAME: 'dove:cot' }).message).toMatch(/PUSH_USERNAME.*":"/);
  });
});

describe('OLLAMA_HOST with several hosts', () => {
  it('takes a comma-separated list, each normalised; a bad one is named', () => {
    expect(loadConfig({ OLLAMA_HOST: 'gpu1:11434, http://gpu2.example:11434/' }).llm.host).toBe('http://gpu1:11434,http://gpu2.example:11434');
    expect(() => loadConfig({ OLLAMA_HOST: 'gpu1:11434,ftp://x' })).toThrow(/OLLAMA_HOST: not a host, host:port or http\(s\) URL: "ftp:\/\/x"/);
  });
});

describe('OLLAMA_HOST as Ollama\'s own clients read it', () => {
  it.each([
    ['127.0.0.1', 'http://127.0.0.1:11434'],
    ['ollama', 'http://ollama:11434'],
    ['ollama:8000', 'http://ollama:8000'],
    ['[::1]', 'http://[::1]:11434'],
    ['http://ollama', 'http://ollama'],
    ['https://gpu.example', 'https://gpu.example'],
    ['https://gpu.example/ollama/', 'https://gpu.example/ollama'],
    ['gpu.example:11434/proxy', 'http://gpu.example:11434/proxy'],
  ])('%s means %s (no scheme: port 11434; a scheme: its own port; a path is kept)', (value, url) => {
    expect(loadConfig({ OLLAMA_HOST: value }).llm.host).toBe(url);
  });

  it.each(['not a url', 'ftp://ollama', 'http://', 'ollama:port', 'user:pw@ollama', 'http://ollama/?q=1', '-ollama'])('refuses %j, naming it', (value) => {
    expect(configError({ OLLAMA_HOST: value }).message).toContain(`OLLAMA_HOST: not a host, host:port or http(s) URL: ${JSON.stringify(value)}`);
  });
});

describe('IMAP TLS settings', () => {
  it('defaults: STARTTLS when offered, certificates verified', () => {
    expect(loadConfig({}).imap).toMatchObject({ secure: false, starttls: 'auto', tlsVerify: true });
  });

  it('reads IMAP_STARTTLS, IMAP_TLS_SERVERNAME, IMAP_TLS_VERIFY and a readable PEM IMAP_TLS_CA_FILE', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mailsight-ca-'));
    const ca = join(dir, 'ca.pem');
    writeFileSync(ca, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
    const c = loadConfig({ IMAP_STARTTLS: 'required', IMAP_TLS_CA_FILE: ca, IMAP_TLS_SERVERNAME: 'mail.example.org', IMAP_TLS_VERIFY: 'false' });
    expect(c.imap).toMatchObject({ starttls: 'required', tlsCaFile: ca, tlsServername: 'mail.example.org', tlsVerify: false });
  });

  it('names a bad value, an unreadable CA file and one without a certificate', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mailsight-ca-'));
    const notPem = join(dir, 'key.pem');
    writeFileSync(notPem, 'hello');
    const err = configError({ IMAP_STARTTLS: 'sometimes', IMAP_TLS_CA_FILE: join(dir, 'missing.pem') });
    expect(err.problems).toEqual([expect.stringMatching(/^IMAP_STARTTLS: must be auto, required or never/), expect.stringMatching(/^IMAP_TLS_CA_FILE: cannot read .*missing\.pem: ENOENT/)]);
    expect(configError({ IMAP_TLS_CA_FILE: notPem }).message).toMatch(/IMAP_TLS_CA_FILE: .*holds no PEM certificate/);
  });

  it('takes the same settings from the YAML file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mailsight-yaml-'));
    const file = join(dir, 'config.yml');
    writeFileSync(file, 'imap:\n  host: dovecot\n  starttls: required\n  tls_servername: mail.example.org\n  tls_verify: true\n');
    expect(loadConfig({ CONFIG_FILE: file }).imap).toMatchObject({ host: 'dovecot', starttls: 'required', tlsServername: 'mail.example.org', tlsVerify: true });
  });
});

describe('LLM_PROVIDER=openai', () => {
  it('needs LLM_BASE_URL; keeps its path, drops a trailing slash; LLM_API_KEY is a secret', () => {
    expect(configError({ LLM_PROVIDER: 'openai' }).message).toContain('LLM_BASE_URL: is required with LLM_PROVIDER=openai');
    const c = loadConfig({ LLM_PROVIDER: 'openai', LLM_BASE_URL: 'http://vllm:8000/v1/, http://llamacpp:8080/v1', LLM_API_KEY: 'sk-123' });
    expect(c.llm).toMatchObject({ provider: 'openai', baseUrl: 'http://vllm:8000/v1,http://llamacpp:8080/v1', apiKey: 'sk-123' });
    expect(configError({ LLM_PROVIDER: 'vllm' }).message).toContain('LLM_PROVIDER');
    expect(loadConfig({ LLM_PROVIDER: 'openai', LLM_BASE_URL: 'vllm:8000/v1' }).llm.baseUrl).toBe('http://vllm:8000/v1');
    expect(configError({ LLM_BASE_URL: 'ftp://vllm' }).message).toContain('LLM_BASE_URL: not a host:port or http(s) URL: "ftp://vllm"');
    expect(loadConfig({}).llm.provider).toBe('ollama');
  });
});

describe('PUSH_ALLOW_FROM', () => {
  it('takes addresses and CIDRs, IPv4 and IPv6; an IPv4 client on a dual-stack socket matches its IPv4 entry', () => {
    const list = loadConfig({ PUSH_ALLOW_FROM: '127.0.0.1, 172.22.1.0/24, ::1' }).push.allowFrom!;
    expect(['127.0.0.1', '172.22.1.250', '::1', '::ffff:172.22.1.9'].map((a) => list.allows(a))).toEqual([true, true, true, true]);
    expect(['127.0.0.2', '172.22.2.1', 'local', ''].map((a) => list.allows(a))).toEqual([false, false, false, false]);
    expect(loadConfig({}).push.allowFrom).toBeUndefined();
  });

  it('names every entry that is not an address or a CIDR', () => {
    expect(configError({ PUSH_ALLOW_FROM: '127.0.0.1, dovecot, 10.0.0.0/33' }).message).toContain('PUSH_ALLOW_FROM: not an IP address or CIDR: "dovecot", "10.0.0.0/33"');
  });
});
