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
    // Nothing that needs Compose 2.20 (depends_on's `required:`): Debian's docker-compose 1.29 reads the file.
    expect(compose.services.mailsight.depends_on).toEqual({ postgres: { condition: 'service_healthy' } });
    expect(JSON.stringify(compose)).not.toMatch(/"required":/);
    expect(compose.services.postgres.volumes[0]).toMatch(/^postgres-data:/);
  });
  it('pins every image to a version, and publishes ports on 127.0.0.1 only', () => {
    for (const [name, service] of Object.entries<any>(compose.services)) {
      if (!service.image) continue;
      expect(service.image, name).toMatch(/:\d+\.\d+/);
      expect(service.image, name).not.toMatch(/:latest$/);
    }
    const FROM = [...read('Dockerfile').matchAll(/^FROM (\S+)/gm)].map((m) => m[1]!);
    for (const image of FROM) expect(image).toMatch(/^node:\d+\.\d+\.\d+-/);
    for (const [name, service] of Object.entries<any>(compose.services)) {
      for (const port of service.ports ?? []) expect(port, name).toMatch(/^127\.0\.0\.1:\d+:\d+$/);
    }
  });
  it("mailsight's variables are the configuration's, and secrets come from .env", () => {
    const env = compose.services.mailsight.environment;
    for (const name of Object.keys(env)) expect(ENV_PATHS, name).toHaveProperty(name);
    expect(compose.services.mailsight.env_file).toBe('.env');
    expect(env.OLLAMA_HOST).toBe('${OLLAMA_HOST:-ollama:11434}'); // an external Ollama from .env, else the bundled one
    expect(compose.services.postgres.environment.POSTGRES_PASSWORD).toMatch(/^\$\{POSTGRES_PASSWORD:\?/);
  });
  it('the Dovecot service: its own configuration, users from a file, a master user, mail on a volume where the image keeps it', () => {
    const mounts: string[] = compose.services.dovecot.volumes;
    expect(mounts).toContain('./dovecot/compose/dovecot.conf:/etc/dovecot/dovecot.conf:ro');
    expect(mounts).toContain('./dovecot/2.3/91-mailsight-master.conf:/etc/dovecot/mailsight/91-mailsight-master.conf:ro');
    expect(mounts).toContain('./data/dovecot/users:/etc/dovecot/users:ro');
    expect(mounts.some((m) => m.endsWith('/etc/dovecot/conf.d/90-mailsight.conf:ro'))).toBe(true);
    const conf = read('dovecot/compose/dovecot.conf');
    // The image (dovecot/dovecot 2.3) declares VOLUME /srv/mail: mail outside it is lost with the container.
    const mailVolume = mounts.find((m) => m.startsWith('dovecot-mail:'))!.split(':')[1]!;
    expect(mailVolume).toBe('/srv/mail');
    expect(conf).toMatch(new RegExp(`^mail_home = ${mailVolume}/`, 'm'));
    expect(conf).not.toMatch(/driver = static/);
    expect(conf).toMatch(/^!include \/etc\/dovecot\/mailsight\/91-mailsight-master\.conf\npassdb \{\n {2}driver = passwd-file\n {2}args = scheme=SHA512-CRYPT \/etc\/dovecot\/users/m);
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
    expect(docker).toMatch(/npm ci --omit=dev --ignore-scripts/);
    expect(docker).toMatch(/^USER node$/m);
    expect(docker).toMatch(/^HEALTHCHECK .*\n.*\/health/m);
    // The built code, in exec form (node gets SIGTERM itself), with no sources or compiler in the image.
    expect(docker).toMatch(/^RUN npm run build$/m);
    expect(docker).toMatch(/^CMD \["node", "--enable-source-maps", "dist\/cli.js", "serve"\]$/m);
    const finalStage = docker.slice(docker.lastIndexOf('\nFROM '));
    expect(finalStage).toMatch(/^COPY --from=build \/app\/dist \.\/dist$/m);
    expect(finalStage).not.toMatch(/COPY src|tsx|typescript/);
  });
});
