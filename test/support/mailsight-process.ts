import { spawn, type ChildProcess } from 'node:child_process';
import type { Dovecot } from './dovecot.js';

const BIN = new URL('../../bin/mailsight.js', import.meta.url).pathname;

/**
 * mailsight as its own process (`mailsight serve`), as an operator runs it: for tests that kill it
 * (-9), run several instances on one database, or restart it. Its output is kept for a failure report.
 */
export class MailsightProcess {
  private child?: ChildProcess;
  output = '';

  constructor(
    readonly port: number,
    private readonly env: Record<string, string>,
  ) {}

  get baseUrl() {
    return `http://127.0.0.1:${this.port}`;
  }

  get pid() {
    return this.child?.pid;
  }

  static async start(port: number, env: Record<string, string>): Promise<MailsightProcess> {
    const p = new MailsightProcess(port, env);
    await p.start();
    return p;
  }

  async start(): Promise<void> {
    const child = spawn(process.execPath, [BIN, 'serve'], {
      env: { ...this.env, PORT: String(this.port), HOST: '127.0.0.1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    const keep = (d: Buffer) => {
      this.output = (this.output + d.toString()).slice(-20_000);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`mailsight exited with ${child.exitCode}:\n${this.output}`);
      const ok = await fetch(`${this.baseUrl}/health`).then((r) => r.ok, () => false);
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`mailsight did not become healthy:\n${this.output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Sends the signal and waits for the process to end (SIGKILL: a crash; SIGTERM: a clean stop). */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await gone;
  }
}

/**
 * The environment for a mailsight process on a test Dovecot, database and model: the master login,
 * the push password, warn-level logs; `extra` adds or overrides settings.
 */
export function processEnv(o: { databaseUrl: string; dataDir: string; dc: Dovecot; modelUrl: string; pushPassword: string; extra?: Record<string, string> }): Record<string, string> {
  return {
    ...(process.env as Record<string, string>),
    DATABASE_URL: o.databaseUrl,
    DATA_DIR: o.dataDir,
    IMAP_HOST: '127.0.0.1',
    IMAP_PORT: String(o.dc.imapPort),
    IMAP_MASTER_USER: o.dc.masterUser,
    IMAP_MASTER_PASSWORD: o.dc.masterPassword,
    OLLAMA_HOST: o.modelUrl,
    PUSH_PASSWORD: o.pushPassword,
    LOG_LEVEL: 'warn',
    ...o.extra,
  };
}
