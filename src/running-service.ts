import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from './config.js';
import { processAlive } from './util/process-alive.js';

/**
 * `DATA_DIR/service.json`: where the service that runs on this data directory listens. The embedded
 * database admits one process at a time, so the CLI, finding it in use, talks to that service's
 * admin API instead (cli/service-client.ts). Written once listening, removed on a clean stop; a
 * crashed service's file names a dead process and is ignored.
 */
export interface RunningService {
  pid: number;
  /** Base URL on which this machine reaches the service. */
  url: string;
}

const fileOf = (config: Config) => join(config.dataDir, 'service.json');

/** Writes the file; throws when DATA_DIR cannot be written (the caller logs it: the service runs on). */
export function announceService(config: Config, url: string): () => void {
  const file = fileOf(config);
  // On Postgres nothing else may have made DATA_DIR yet.
  mkdirSync(config.dataDir, { recursive: true });
  writeFileSync(file, `${JSON.stringify({ pid: process.pid, url } satisfies RunningService)}\n`, { mode: 0o600 });
  return () => {
    if (findRunningService(config)?.pid === process.pid) rmSync(file, { force: true });
  };
}

/** The live service on this data directory, or undefined (none, or its process is gone). */
export function findRunningService(config: Config): RunningService | undefined {
  const file = fileOf(config);
  if (!existsSync(file)) return undefined;
  let found: RunningService;
  try {
    found = JSON.parse(readFileSync(file, 'utf8')) as RunningService;
  } catch {
    return undefined;
  }
  if (!Number.isInteger(found.pid) || typeof found.url !== 'string') return undefined;
  return processAlive(found.pid) ? found : undefined;
}
