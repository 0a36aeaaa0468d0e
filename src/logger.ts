import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

/** Paths never written to a log, whatever a caller passes in. */
export const REDACT_PATHS = [
  'password',
  '*.password',
  'pass',
  '*.pass',
  'apiKey',
  '*.apiKey',
  'headers.authorization',
  'headers["x-api-key"]',
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'databaseUrl',
  '*.databaseUrl',
  'imap.masterPassword',
  'push.password',
  'privacy.encryptionKey',
  'privacy.previousKeys',
  '*.encryptionKey',
  'auth.pass',
  'body',
  '*.body',
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      name: 'mailsight',
      level,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      base: { pid: process.pid },
    },
    destination,
  );
}

/**
 * An error as one log-safe line. A failed drizzle query's message repeats the SQL and its parameters
 * (subjects, addresses): log the database's own error (its cause) instead.
 */
export function errorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as { cause?: unknown }).cause;
  if (err.message.startsWith('Failed query:') && cause instanceof Error) return cause.message;
  return err.message;
}
