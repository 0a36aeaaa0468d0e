import type { Config } from '../config.js';
import { currentAdminKey } from '../http/admin-key.js';
import { API_KEY_HEADER } from '../http/api-auth.js';
import { findRunningService, type RunningService } from '../running-service.js';
import { UsageError } from './common.js';

/**
 * The running service's admin API, for CLI commands on the embedded database: PGlite admits one
 * process, so while `mailsight serve` holds it, `apikey` (and `check`) ask the service instead.
 */
export class ServiceClient {
  constructor(
    readonly service: RunningService,
    private readonly adminKey: string,
  ) {}

  async call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(new URL(path, this.service.url), {
        method,
        headers: { [API_KEY_HEADER]: this.adminKey, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(10_000),
      });
    } catch (err) {
      throw new Error(`the running service (process ${this.service.pid}) did not answer at ${this.service.url}: ${(err as Error).message}`);
    }
    const answer = (await res.json().catch(() => null)) as { error?: { message?: string } } | null;
    if (!res.ok) throw new ServiceError(res.status, answer?.error?.message ?? `HTTP ${res.status}`);
    return answer as T;
  }
}

/** An error answer of the service's API, with its status (404: no such thing). */
export class ServiceError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * A client for the service running on this embedded database, or undefined when the CLI can open the
 * database itself (Postgres, or no service running).
 */
export function runningServiceClient(config: Config): ServiceClient | undefined {
  if (config.databaseUrl) return undefined;
  const service = findRunningService(config);
  if (!service) return undefined;
  const admin = currentAdminKey(config);
  if (!admin) {
    throw new UsageError(
      `the embedded database in ${config.dataDir} is in use by the running service (process ${service.pid}), and this command has no admin key to ask it with: set API_KEY as the service has it`,
    );
  }
  return new ServiceClient(service, admin.key);
}
