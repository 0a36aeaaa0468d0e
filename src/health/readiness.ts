import { errorText } from '../logger.js';
import { withDeadline, AppError } from '../http/errors.js';

export interface ReadinessCheck {
  name: string;
  /** Resolves with optional details when the component works; throws with the reason otherwise. */
  run: () => Promise<Record<string, unknown> | void>;
}

export interface ComponentState {
  ok: boolean;
  latencyMs: number;
  error?: string;
  [detail: string]: unknown;
}

const CHECK_TIMEOUT_MS = 2000;

/**
 * Every component's state. `detailed: false` is for the unauthenticated /ready: whether each
 * component works and, when not, its error code, nothing else (no host, mailbox, user or model
 * name). The admin's health endpoint and dashboard get the details and the error text with its fix.
 */
export async function checkReadiness(checks: ReadinessCheck[], opts: { detailed: boolean } = { detailed: true }) {
  const entries = await Promise.all(
    checks.map(async (check): Promise<[string, ComponentState]> => {
      const started = performance.now();
      try {
        const details = await withDeadline(
          check.run(),
          CHECK_TIMEOUT_MS,
          () => new AppError('NOT_READY', `no answer within ${CHECK_TIMEOUT_MS} ms`),
        );
        const latencyMs = Math.round(performance.now() - started);
        return [check.name, opts.detailed ? { ok: true, latencyMs, ...(details ?? {}) } : { ok: true, latencyMs }];
      } catch (err) {
        const latencyMs = Math.round(performance.now() - started);
        if (!opts.detailed) return [check.name, { ok: false, latencyMs, code: errorCode(err) }];
        return [check.name, { ok: false, latencyMs, code: errorCode(err), error: errorText(err) }];
      }
    }),
  );
  const components = Object.fromEntries(entries);
  return { status: entries.every(([, s]) => s.ok) ? 'ready' : 'not_ready', components } as const;
}

/** An error's code when it has a word-like one (AppError, JobError, Node's), else a generic one. */
function errorCode(err: unknown): string {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' && /^[A-Z][A-Z0-9_]{1,60}$/.test(code) ? code : 'UNAVAILABLE';
}
