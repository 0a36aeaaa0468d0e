import { readFileSync, existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { rulesSchema } from './analysis/rules.js';
import { DEFAULT_EXCLUDE, folderEntryProblem } from './mail/folders.js';
import { AllowList } from './http/allow-list.js';
import { parseKey } from './privacy/sealer.js';

/**
 * Settings come from the environment and an optional YAML file (the seed's layout);
 * the environment wins. Parsed once at start-up; every problem is reported together.
 */

const DEFAULT_CONFIG_FILE = 'data/conf/llm/config.yml';

const bool = z
  .union([z.boolean(), z.enum(['true', 'false', '1', '0', 'yes', 'no'])], { error: 'must be true or false (or 1/0, yes/no)' })
  .transform((v) => (typeof v === 'boolean' ? v : ['true', '1', 'yes'].includes(v)));
const int = (min: number, max: number) => {
  const allowed = `must be a whole number from ${min.toLocaleString('en')} to ${max.toLocaleString('en')}`;
  return z.coerce.number({ error: allowed }).int(allowed).min(min, allowed).max(max, allowed);
};

/**
 * The placeholders .env.example ships (change-me, change-me-too, CHANGE_ME): a secret left at one of
 * them is refused, so a copied example never runs with a password the whole world knows.
 */
const PLACEHOLDER_SECRET = /^change[-_ ]?me\b/i;
const secretValue = (min = 1, tooShort?: string) =>
  z
    .string()
    .min(min, tooShort)
    .refine((v) => !PLACEHOLDER_SECRET.test(v), "is still the example's placeholder: set a secret of your own");
const nonEmpty = z.string().trim().min(1);

/** An AES-256 key (64 hex characters or base64 of 32 bytes), checked here so a bad one stops start-up. */
const encryptionKey = z.string().transform((v, ctx) => {
  try {
    return parseKey(v);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

/** A readable file that holds at least one PEM certificate (checked here: a bad one stops start-up with its reason). */
const pemFile = nonEmpty.superRefine((file, ctx) => {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
    return;
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) ctx.addIssue({ code: 'custom', message: `${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)` });
});

/** A DNS name or an IP literal (IPv6 in brackets): what may stand between the scheme and the port. */
const HOST_RE = /^(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*)$/i;

/**
 * One LLM server address as Ollama's own clients read OLLAMA_HOST: without a scheme it is
 * `http://` and, without a port, port 11434; with an explicit scheme the scheme's port (80/443)
 * applies. A path is kept (a server behind a reverse proxy). Undefined when it is not an address.
 */
export function parseServerAddress(value: string, defaultPort: number | undefined): string | undefined {
  const explicit = /^[a-z][a-z0-9+.-]*:\/\//i.test(value);
  if (explicit && !/^https?:\/\//i.test(value)) return undefined;
  const withScheme = explicit ? value : `http://${value}`;
  if (!URL.canParse(withScheme)) return undefined;
  const url = new URL(withScheme);
  if (!HOST_RE.test(url.hostname) || url.username || url.password || url.search || url.hash) return undefined;
  if (!explicit && !url.port && defaultPort !== undefined) url.port = String(defaultPort);
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

/** A comma-separated list of server addresses, each normalised; a bad one is named in the error. */
const serverList = (problem: string, defaultPort: number | undefined) =>
  nonEmpty.transform((v, ctx) => {
    const out: string[] = [];
    for (const part of v.split(',').map((p) => p.trim()).filter(Boolean)) {
      const url = parseServerAddress(part, defaultPort);
      if (!url) {
        ctx.addIssue({ code: 'custom', message: `${problem}: ${JSON.stringify(part)}` });
        return z.NEVER;
      }
      out.push(url);
    }
    return out.join(',');
  });

/** Ollama's default port, as its server and its clients take it when OLLAMA_HOST names none. */
export const OLLAMA_DEFAULT_PORT = 11434;

/** Ollama servers; several share the work (the LLM client sends each call to the least busy healthy one). */
const ollamaHost = serverList('not a host, host:port or http(s) URL', OLLAMA_DEFAULT_PORT);

/** Base URLs of an OpenAI-compatible API: the path is kept (…/v1), a trailing slash dropped. */
const llmBaseUrl = serverList('not a host:port or http(s) URL', undefined);

/** FOLDERS_INCLUDE / FOLDERS_EXCLUDE: comma-separated in the environment, a list in YAML; `none` is the empty list. */
const folderList = z
  .union([z.string(), z.array(z.string())])
  .transform((v) => (Array.isArray(v) ? v : v.trim().toLowerCase() === 'none' ? [] : v.split(',')).map((e) => String(e).trim()).filter(Boolean))
  .superRefine((entries, ctx) => {
    for (const e of entries) {
      const problem = folderEntryProblem(e);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    }
  });

export const configSchema = z
  .object({
    port: int(0, 65535).default(8080),
    host: nonEmpty.default('0.0.0.0'),
    databaseUrl: z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'must start with postgres:// or postgresql://')
      .refine((v) => !/:change[-_]?me@/i.test(v), "holds the example's placeholder password: set the database's real one")
      .optional(),
    dataDir: nonEmpty.default('./data'),
    configFile: z.string().optional(),
    push: z.object({
      username: nonEmpty.refine((v) => !v.includes(':'), 'must not contain ":" (HTTP Basic, RFC 7617)').default('dovecot'),
      password: secretValue().optional(),
      auth: z.enum(['basic', 'none']).default('basic'),
      /** How long the push handler waits for the database before answering 503 (Dovecot is waiting). */
      /**
       * Dovecot gives up on the webhook after 2 s (timeout_msecs=2000) and then loses the event, so
       * waiting longer than that is useless and answering 503 earlier loses a push that would have
       * been written: 400 ms gave 4 spurious 503s in a 400-push burst on a loaded 2-core machine.
       */
      dbTimeoutMs: int(50, 10_000).default(1500),
      /**
       * Whether a push's INSERT waits for its WAL to reach disk. Off by default: the wait is most of
       * a push's cost while Dovecot holds the delivery, and what it protects (the last fraction of a
       * second of pushes, and only if the Postgres server itself crashes) the sweep recovers.
       */
      synchronousCommit: bool.default(false),
      /**
       * Addresses and CIDRs allowed to push (Dovecot's). Others get 403 before authentication;
       * allowed ones are never locked out by failed attempts (each is logged and counted).
       */
      allowFrom: z
        .union([z.string(), z.array(z.string())])
        .transform((v, ctx) => {
          try {
            return AllowList.parse((Array.isArray(v) ? v : v.split(',')).map((e) => e.trim()).filter(Boolean));
          } catch (err) {
            ctx.addIssue({ code: 'custom', message: (err as Error).message });
            return z.NEVER;
          }
        })
        .optional(),
    }),
    apiKey: secretValue(16, 'must be at least 16 characters').optional(),
    /** Bearer token /metrics asks for; unset, /metrics is open (keep it on the internal network). */
    metricsToken: secretValue(16, 'must be at least 16 characters').optional(),
    /** Requests per minute per API key (admin and mailbox keys alike), with bursts up to as many (429 beyond). */
    apiRateLimit: int(1, 1_000_000).default(120),
    /** Failed push-auth or API-key attempts from one address per minute before it is refused (429). */
    authMaxFailures: int(1, 100_000).default(20),
    /** How long such an address is refused. */
    authBlockSec: int(1, 86_400).default(300),
    /** Mailbox owners sign in to the dashboard with their mail address and password (one IMAP LOGIN each). */
    dashboardImapLogin: bool.default(true),
    imap: z.object({
      host: nonEmpty.default('127.0.0.1'),
      port: int(1, 65535).default(143),
      /** Implicit TLS from the first byte (port 993). */
      secure: bool.default(false),
      /**
       * Without implicit TLS: `auto` upgrades when the server offers STARTTLS, `required` never sends
       * credentials without TLS, `never` stays in plaintext (a trusted local socket only).
       */
      starttls: z.enum(['auto', 'required', 'never'], { error: 'must be auto, required or never' }).default('auto'),
      /** PEM file of extra CAs to trust for the IMAP server (a private CA, or the self-signed certificate itself). */
      tlsCaFile: pemFile.optional(),
      /** The name the server's certificate must carry when it differs from IMAP_HOST (Mailcow: MAILCOW_HOSTNAME). */
      tlsServername: nonEmpty.optional(),
      /** false: the IMAP server's certificate is not checked (this connection only; warned about at start-up). */
      tlsVerify: bool.default(true),
      masterUser: nonEmpty.optional(),
      masterPassword: secretValue().optional(),
      masterSeparator: z.string().min(1).max(4).default('*'),
      /** Open master-user sessions at most (one per mailbox being worked on). */
      maxSessions: int(1, 1000).default(16),
      /** A mailbox's session is logged out after this long without work. */
      idleCloseSec: int(1, 3600).default(60),
      /** Bytes of a message fetched at most; a larger message is analysed from its start. */
      maxFetchBytes: int(16 * 1024, 256 * 1024 * 1024).default(2 * 1024 * 1024),
    }),
    /** The model server: Ollama's API (OLLAMA_*) or an OpenAI-compatible one (LLM_*). */
    llm: z.object({
      host: ollamaHost.default('http://127.0.0.1:11434'),
      model: nonEmpty.default('llama3.2:3b'),
      /** One chat call may take this long (a cold model load on CPU takes tens of seconds). */
      timeoutMs: int(100, 3_600_000).default(180_000),
      /** Pull the model at start-up when the server lacks it; off: mailsight fetches nothing by itself. */
      autoPull: bool.default(false),
      /**
       * The context window (tokens) asked of every LLM host, always the same: Ollama reloads the model
       * when a request's num_ctx differs from the loaded one. Prompts are cut to fit it.
       */
      numCtx: int(1024, 1_048_576).default(4096),
      /**
       * Thinking models (qwen3, deepseek-r1, gpt-oss): Ollama thinks when `think` is not sent, before
       * the schema applies, spending time and output tokens. false by default; gpt-oss takes low/medium/high.
       */
      think: z.enum(['false', 'true', 'low', 'medium', 'high'], { error: 'must be false, true, low, medium or high' }).default('false'),
      /** `openai`: an OpenAI-compatible server (vLLM, llama.cpp's server, LM Studio) at `baseUrl` instead of Ollama. */
      provider: z.enum(['ollama', 'openai']).default('ollama'),
      /** The OpenAI-compatible API's base URL(s), e.g. http://vllm:8000/v1; comma-separated for several. */
      baseUrl: llmBaseUrl.optional(),
      /** Bearer key for the OpenAI-compatible server, when it wants one. */
      apiKey: z.string().min(1).optional(),
      /**
       * A failing LLM host rests 1 s, doubling per failure in a row, up to this; while every host rests,
       * jobs wait (without spending attempts). The most a recovered server waits for traffic.
       */
      hostRestMaxSec: int(1, 3600).default(30),
    }),
    processing: z.object({
      intervalSec: int(1, 86_400).default(60),
      batchSize: int(1, 1000).default(10),
      concurrentJobs: int(1, 256).default(2),
      maxEmailSize: int(200, 1_000_000).default(4000),
      /** Run workers and the sweep in this instance (off: push receiver and API only). */
      workers: bool.default(true),
      /** A job that failed this many times with transient errors becomes `dead`. */
      maxAttempts: int(1, 100).default(8),
      /**
       * A claimed job returns to the queue when its worker has not renewed the lease for this long
       * (renewed every third of it). Short, so a crashed instance's jobs on another host return
       * within half a minute; on the same host a restart takes them back at once.
       */
      leaseSec: int(2, 86_400).default(30),
      /** Retry delay after the first failure; doubles each attempt, with jitter, up to retryMaxMs. */
      retryBaseMs: int(10, 86_400_000).default(30_000),
      retryMaxMs: int(10, 86_400_000).default(3_600_000),
      /** Analyses (and finished queue rows and audit entries) older than this many days are deleted; 0 keeps them. */
      retentionDays: int(0, 36_500).default(0),
      /**
       * Load shedding: while the oldest due job has waited this long, the model is asked for verdicts
       * without the optional parts (summary, reply suggestion), so verdicts keep up; 0: never.
       */
      shedAfterSec: int(0, 86_400).default(0),
    }),
    privacy: z.object({
      /** AES-256-GCM key for message content at rest; unset: plaintext (with a warning at start-up). */
      encryptionKey: encryptionKey.optional(),
      /** Earlier keys, comma-separated: rows sealed with them stay readable until `mailsight rotate-key`. */
      previousKeys: z
        .string()
        .transform((v) => v.split(',').map((k) => k.trim()).filter(Boolean))
        .pipe(z.array(encryptionKey))
        .default([]),
      /** false: subjects and senders are not stored at all. */
      keepHeaders: bool.default(true),
      /** Summaries, reasons and reply suggestions are deleted after this many days; verdicts stay (0: kept). */
      summaryDays: int(0, 36_500).default(0),
    }),
    dryRun: bool.default(true),
    /**
     * Which folders' new and appended mail is analysed (mail/folders.ts): an include list (empty: every
     * folder) and an exclude list (default Drafts, Sent, Trash and Junk, by SPECIAL-USE or usual name).
     */
    folders: z
      .object({ include: folderList.default([]), exclude: folderList.default(DEFAULT_EXCLUDE) })
      .default({ include: [], exclude: DEFAULT_EXCLUDE }),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    /** `pretty` on a terminal, `json` otherwise (log-format.ts); `json` or `pretty` force it. */
    logFormat: z.enum(['auto', 'json', 'pretty']).default('auto'),
    rules: rulesSchema,
    actions: z
      .object({
        /** IMAP keywords: $Phishing, $Junk and one per category (per the user's preferences). */
        keywords: bool.default(true),
        /** Spam, scam and phishing at or above junkThreshold go to the Junk folder. */
        moveToJunk: bool.default(true),
        junkThreshold: z.coerce.number().min(0).max(1).default(0.8),
        /** Used when the mailbox has no SPECIAL-USE \\Junk folder; created when missing. */
        junkFolder: z.string().trim().min(1).max(200).default('Junk'),
        /** Mark what is moved to Junk as read. */
        markSeen: bool.default(true),
      })
      .strict()
      .default({ keywords: true, moveToJunk: true, junkThreshold: 0.8, junkFolder: 'Junk', markSeen: true }),
    /**
     * Campaign clean-up (analysis/campaigns.ts): a message judged phishing or scam gives its verdict
     * to the other messages of its campaign on the server, earlier ones included, within the window.
     */
    campaigns: z
      .object({ enabled: bool.default(true), windowHours: int(1, 24 * 30).default(72) })
      .strict()
      .default({ enabled: true, windowHours: 72 }),
    /** Also append every audit entry as a JSON line to this file (Mailwarden's audit.jsonl). */
    auditFile: z.string().trim().min(1).optional(),
  })
  .superRefine((c, ctx) => {
    if (c.llm.provider === 'openai' && !c.llm.baseUrl) {
      ctx.addIssue({ code: 'custom', path: ['llm', 'baseUrl'], message: 'is required with LLM_PROVIDER=openai (e.g. http://vllm:8000/v1)' });
    }
    if ((c.imap.masterUser === undefined) !== (c.imap.masterPassword === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: ['imap', 'masterPassword'],
        message: 'IMAP_MASTER_USER and IMAP_MASTER_PASSWORD must be set together',
      });
    }
  });

export type Config = z.infer<typeof configSchema>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

/** Reads NAME, or the contents of the file named by NAME_FILE (Docker secrets). */
function secret(env: Env, name: string, problems: string[]): string | undefined {
  const file = env[`${name}_FILE`];
  if (file) {
    try {
      return readFileSync(file, 'utf8').trim();
    } catch (err) {
      problems.push(`${name}_FILE: cannot read ${file}: ${(err as Error).message}`);
      return undefined;
    }
  }
  return env[name] === '' ? undefined : env[name];
}

/** Maps an environment variable to its place in the config object, so errors name the variable. */
export const ENV_PATHS: Record<string, string[]> = {
  PORT: ['port'],
  HOST: ['host'],
  DATABASE_URL: ['databaseUrl'],
  DATA_DIR: ['dataDir'],
  CONFIG_FILE: ['configFile'],
  PUSH_USERNAME: ['push', 'username'],
  PUSH_PASSWORD: ['push', 'password'],
  PUSH_AUTH: ['push', 'auth'],
  PUSH_DB_TIMEOUT_MS: ['push', 'dbTimeoutMs'],
  PUSH_SYNCHRONOUS_COMMIT: ['push', 'synchronousCommit'],
  PUSH_ALLOW_FROM: ['push', 'allowFrom'],
  API_KEY: ['apiKey'],
  METRICS_TOKEN: ['metricsToken'],
  AUTH_MAX_FAILURES: ['authMaxFailures'],
  API_RATE_LIMIT: ['apiRateLimit'],
  AUTH_BLOCK_SEC: ['authBlockSec'],
  DASHBOARD_IMAP_LOGIN: ['dashboardImapLogin'],
  IMAP_HOST: ['imap', 'host'],
  IMAP_PORT: ['imap', 'port'],
  IMAP_SECURE: ['imap', 'secure'],
  IMAP_STARTTLS: ['imap', 'starttls'],
  IMAP_TLS_CA_FILE: ['imap', 'tlsCaFile'],
  IMAP_TLS_SERVERNAME: ['imap', 'tlsServername'],
  IMAP_TLS_VERIFY: ['imap', 'tlsVerify'],
  IMAP_MASTER_USER: ['imap', 'masterUser'],
  IMAP_MASTER_PASSWORD: ['imap', 'masterPassword'],
  IMAP_MASTER_SEPARATOR: ['imap', 'masterSeparator'],
  IMAP_MAX_SESSIONS: ['imap', 'maxSessions'],
  IMAP_IDLE_CLOSE_SEC: ['imap', 'idleCloseSec'],
  IMAP_MAX_FETCH_BYTES: ['imap', 'maxFetchBytes'],
  OLLAMA_HOST: ['llm', 'host'],
  OLLAMA_MODEL: ['llm', 'model'],
  OLLAMA_TIMEOUT_MS: ['llm', 'timeoutMs'],
  LLM_PROCESSING_INTERVAL: ['processing', 'intervalSec'],
  LLM_BATCH_SIZE: ['processing', 'batchSize'],
  LLM_CONCURRENT_JOBS: ['processing', 'concurrentJobs'],
  LLM_MAX_EMAIL_SIZE: ['processing', 'maxEmailSize'],
  LLM_WORKERS: ['processing', 'workers'],
  LLM_MAX_ATTEMPTS: ['processing', 'maxAttempts'],
  LLM_LEASE_SEC: ['processing', 'leaseSec'],
  LLM_RETRY_BASE_MS: ['processing', 'retryBaseMs'],
  LLM_RETRY_MAX_MS: ['processing', 'retryMaxMs'],
  LLM_RETENTION_DAYS: ['processing', 'retentionDays'],
  LLM_SHED_AFTER_SEC: ['processing', 'shedAfterSec'],
  ENCRYPTION_KEY: ['privacy', 'encryptionKey'],
  ENCRYPTION_KEY_PREVIOUS: ['privacy', 'previousKeys'],
  PRIVACY_KEEP_HEADERS: ['privacy', 'keepHeaders'],
  PRIVACY_SUMMARY_DAYS: ['privacy', 'summaryDays'],
  OLLAMA_AUTO_PULL: ['llm', 'autoPull'],
  LLM_NUM_CTX: ['llm', 'numCtx'],
  LLM_THINK: ['llm', 'think'],
  LLM_PROVIDER: ['llm', 'provider'],
  LLM_BASE_URL: ['llm', 'baseUrl'],
  LLM_API_KEY: ['llm', 'apiKey'],
  LLM_HOST_REST_MAX_SEC: ['llm', 'hostRestMaxSec'],
  DRY_RUN: ['dryRun'],
  CAMPAIGN_CLEANUP: ['campaigns', 'enabled'],
  CAMPAIGN_WINDOW_HOURS: ['campaigns', 'windowHours'],
  FOLDERS_INCLUDE: ['folders', 'include'],
  FOLDERS_EXCLUDE: ['folders', 'exclude'],
  AUDIT_FILE: ['auditFile'],
  LOG_LEVEL: ['logLevel'],
  LOG_FORMAT: ['logFormat'],
};
const SECRET_VARS = new Set(['PUSH_PASSWORD', 'API_KEY', 'METRICS_TOKEN', 'IMAP_MASTER_PASSWORD', 'DATABASE_URL', 'ENCRYPTION_KEY', 'ENCRYPTION_KEY_PREVIOUS', 'LLM_API_KEY']);
const PATH_TO_ENV = new Map(Object.entries(ENV_PATHS).map(([k, v]) => [v.join('.'), k]));

/** The YAML file's `actions` keys (the seed's snake_case) and their names in the config object. */
const ACTION_KEYS: Record<string, string> = { move_to_junk: 'moveToJunk', junk_threshold: 'junkThreshold', junk_folder: 'junkFolder', mark_seen: 'markSeen' };
const YAML_NAMES = new Map(Object.entries(ACTION_KEYS).map(([yaml, key]) => [`actions.${key}`, `actions.${yaml}`]));

/** Known keys renamed; unknown ones kept as they are, so the schema names them as the user wrote them. */
function renameKeys(v: unknown, names: Record<string, string>): unknown {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return v;
  return Object.fromEntries(Object.entries(v).map(([k, val]) => [names[k] ?? k, val]));
}

/**
 * The YAML file's keys (the seed's layout, and what later issues added) and where each goes in the
 * config object. `rules`, `actions` and `folders` are whole sections with schemas of their own.
 */
const YAML_KEYS: Record<string, Record<string, string[]>> = {
  ollama: { host: ['llm', 'host'], model: ['llm', 'model'], num_ctx: ['llm', 'numCtx'], think: ['llm', 'think'] },
  processing: { batch_size: ['processing', 'batchSize'], interval: ['processing', 'intervalSec'] },
  performance: { max_email_size: ['processing', 'maxEmailSize'], concurrent_jobs: ['processing', 'concurrentJobs'] },
  imap: {
    host: ['imap', 'host'],
    port: ['imap', 'port'],
    secure: ['imap', 'secure'],
    starttls: ['imap', 'starttls'],
    tls_ca_file: ['imap', 'tlsCaFile'],
    tls_servername: ['imap', 'tlsServername'],
    tls_verify: ['imap', 'tlsVerify'],
  },
};
const YAML_SECTIONS: Record<string, string[]> = { dry_run: ['dryRun'], folders: ['folders'], rules: ['rules'], actions: ['actions'] };

/** The closest of `known` to `word` when it is a likely typo (edit distance at most 2). */
export function didYouMean(word: string, known: string[]): string | undefined {
  const distance = (a: string, b: string) => {
    const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)] as number[]);
    for (let j = 1; j <= b.length; j++) d[0]![j] = j;
    for (let i = 1; i <= a.length; i++)
      for (let j = 1; j <= b.length; j++) d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    return d[a.length]![b.length]!;
  };
  const best = known.map((k) => [k, distance(word.toLowerCase(), k)] as const).sort((x, y) => x[1] - y[1])[0];
  return best && best[1] <= 2 ? best[0] : undefined;
}

interface FromYaml {
  raw: Record<string, any>;
  /** Config path (dotted) -> the YAML key it came from, for error messages. */
  origins: Map<string, string>;
  problems: string[];
}

/** The YAML file mapped onto the config object; unknown keys are problems, with the near match named. */
function fromYaml(doc: any): FromYaml {
  const raw: Record<string, any> = { push: {}, imap: {}, llm: {}, processing: {}, privacy: {} };
  const origins = new Map<string, string>();
  const problems: string[] = [];
  if (doc === null || doc === undefined) return { raw, origins, problems };
  if (typeof doc !== 'object' || Array.isArray(doc)) return { raw, origins, problems: ['the file must be a YAML mapping (key: value lines)'] };
  const unknown = (path: string, key: string, known: string[]) => {
    const near = didYouMean(key, known);
    problems.push(`${path}: unknown key${near ? `; did you mean ${near}?` : ` (known: ${known.join(', ')})`}`);
  };
  const topKnown = [...Object.keys(YAML_KEYS), ...Object.keys(YAML_SECTIONS)];
  for (const [key, value] of Object.entries(doc)) {
    const section = YAML_KEYS[key];
    if (section) {
      if (value === null || value === undefined) continue;
      if (typeof value !== 'object' || Array.isArray(value)) {
        problems.push(`${key}: must be a mapping of ${Object.keys(section).join(', ')}`);
        continue;
      }
      for (const [sub, v] of Object.entries(value)) {
        const path = section[sub];
        if (!path) unknown(`${key}.${sub}`, sub, Object.keys(section));
        else if (v !== undefined && v !== null) {
          setPath(raw, path, key === 'ollama' && (sub === 'host' || sub === 'think') ? String(v) : v);
          origins.set(path.join('.'), `${key}.${sub}`);
        }
      }
    } else if (YAML_SECTIONS[key]) {
      setPath(raw, YAML_SECTIONS[key], key === 'actions' ? renameKeys(value, ACTION_KEYS) : value);
      origins.set(YAML_SECTIONS[key].join('.'), key);
    } else unknown(key, key, topKnown);
  }
  return { raw, origins, problems };
}

function setPath(obj: Record<string, any>, path: string[], value: unknown) {
  let cur = obj;
  for (const key of path.slice(0, -1)) cur = cur[key] ??= {};
  cur[path[path.length - 1]!] = value;
}

/**
 * A setting named as the user wrote it: the variable when the environment set it, else the file and
 * its key (inside a whole section such as `rules`, the path in it), else the variable or the path.
 */
function settingName(key: string, o: { env?: string; fromEnv: Set<string>; origins: Map<string, string>; file?: string }): string {
  if (o.env && (o.fromEnv.has(key) || !o.file)) return o.env;
  const inSection = [...o.origins.keys()].some((path) => key.startsWith(`${path}.`));
  const yaml = o.origins.get(key) ?? YAML_NAMES.get(key) ?? (inSection ? key : undefined);
  if (yaml && o.file) return `${o.file}: ${yaml}`;
  return o.env ?? key;
}

export function loadConfig(env: Env = process.env): Config {
  const problems: string[] = [];
  const explicitFile = env.CONFIG_FILE;
  const file = explicitFile || (existsSync(DEFAULT_CONFIG_FILE) ? DEFAULT_CONFIG_FILE : undefined);
  let raw: Record<string, any> = { push: {}, imap: {}, llm: {}, processing: {}, privacy: {} };
  let origins = new Map<string, string>();
  if (file) {
    try {
      const yaml = fromYaml(parseYaml(readFileSync(resolve(file), 'utf8')));
      raw = yaml.raw;
      origins = yaml.origins;
      problems.push(...yaml.problems.map((p) => `${file}: ${p}`));
    } catch (err) {
      problems.push(`CONFIG_FILE: cannot read ${file}: ${(err as Error).message}`);
    }
  }
  const fromEnv = new Set<string>();
  for (const [name, path] of Object.entries(ENV_PATHS)) {
    const value = SECRET_VARS.has(name) ? secret(env, name, problems) : env[name];
    if (value !== undefined && value !== '') {
      setPath(raw, path, value);
      fromEnv.add(path.join('.'));
    }
  }
  if (file) raw.configFile = file;

  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const key = issue.path.join('.');
      const env = PATH_TO_ENV.get(key);
      const name = settingName(key, { env, fromEnv, origins, file });
      const shown = env && SECRET_VARS.has(env) ? '' : ` (got ${JSON.stringify(getPath(raw, issue.path))})`;
      problems.push(`${name}: ${issue.message}${shown}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return parsed.data!;
}

function getPath(obj: any, path: PropertyKey[]): unknown {
  return path.reduce((cur, k) => (cur == null ? undefined : cur[k as any]), obj);
}
