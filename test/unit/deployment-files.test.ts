import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { ENV_PATHS } from '../../src/config.js';

const ROOT = new URL('../..', import.meta.url).pathname;
const read = (f: string) => readFileSync(`${ROOT}/${f}`, 'utf8');
const compose = parse(read('docker-compose.yml'));
const envExample = read('.env.example');
const variables = (text: string) => new Set([...text.matchAll(/^#?\s*([A-Z][A-Z0-9_]+)=/gm)].map((m) => m[1]!));

describe('docker-compose.yml', () => {
  it('has postgres, ollama (profile), dovecot (profile) and mailsight', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['dovecot', 'mailsight', 'ollama', 'postgres']);
    expect(compose.services.ollama.profiles).toEqual(['ollama']);
    expect(compose.services.dovecot.profiles).toEqual(['dovecot']);
    expect(compose.services.ollama.deploy.resources.reservations.devices[0]).toMatchObject({ driver: 'nvidia', capabilities: ['gpu'] });
  });
  it('every dependency has a healthcheck, and mailsight waits for the database to be healthy', () => {
    for (const name of ['postgres', 'ollama', 'dovecot']) expect(compose.services[name].healthcheck?.test, name).toBeDefined();
    expect(compose.services.mailsight.depends_on).toEqual({
      postgres: { condition: 'service_healthy' },
      ollama: { condition: 'service_healthy', required: false },
      dovecot: { condition: 'service_healthy', required: false },
    });
    expect(compose.services.postgres.volumes[0]).toMatch(/^postgres-data:/);
  });
  it("mailsight's variables are the configuration's, and secrets come from .env", () => {
    const env = compose.services.mailsight.environment;
    for (const name of Object.keys(env)) expect(ENV_PATHS, name).toHaveProperty(name);
    expect(compose.services.mailsight.env_file).toBe('.env');
    expect(env.OLLAMA_HOST).toBe('${OLLAMA_HOST:-ollama:11434}'); // an external Ollama from .env, else the bundled one
    expect(compose.services.postgres.environment.POSTGRES_PASSWORD).toMatch(/^\$\{POSTGRES_PASSWORD:\?/);
  });
  it('the Dovecot service mounts the shipped snippets', () => {
    const mounts: string[] = compose.services.dovecot.volumes;
    expect(mounts).toContain('./dovecot/2.3/91-mailsight-master.conf:/etc/dovecot/conf.d/91-mailsight-master.conf:ro');
    expect(mounts.some((m) => m.endsWith('/etc/dovecot/conf.d/90-mailsight.conf:ro'))).toBe(true);
  });
});

describe('.env.example', () => {
  it('lists every variable mailsight reads, and no other (besides compose\'s POSTGRES_PASSWORD)', () => {
    const listed = variables(envExample);
    expect([...listed].filter((v) => v !== 'POSTGRES_PASSWORD').sort()).toEqual(Object.keys(ENV_PATHS).sort());
  });
});

describe('Dockerfile', () => {
  const docker = read('Dockerfile');
  it('is multi-stage, runs as a non-root user, checks /health and serves by default', () => {
    expect(docker.match(/^FROM /gm)?.length).toBeGreaterThanOrEqual(2);
    expect(docker).toMatch(/npm ci --omit=dev/);
    expect(docker).toMatch(/^USER node$/m);
    expect(docker).toMatch(/^HEALTHCHECK .*\n.*\/health/m);
    expect(docker).toMatch(/^CMD \["node", "bin\/mailsight.js", "serve"\]$/m);
  });
});
