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

export async function checkReadiness(checks: ReadinessCheck[]) {
  const entries = await Promise.all(
    checks.map(async (check): Promise<[string, ComponentState]> => {
      const started = performance.now();
      try {
        const details = await withDeadline(
          check.run(),
          CHECK_TIMEOUT_MS,
          () => new AppError('NOT_READY', `no answer within ${CHECK_TIMEOUT_MS} ms`),
        );
        return [check.name, { ok: true, latencyMs: Math.round(performance.now() - started), ...(details ?? {}) }];
      } catch (err) {
        return [
          check.name,
          { ok: false, latencyMs: Math.round(performance.now() - started), error: errorText(err) },
        ];
      }
    }),
  );
  const components = Object.fromEntries(entries);
  return { status: entries.every(([, s]) => s.ok) ? 'ready' : 'not_ready', components } as const;
}
