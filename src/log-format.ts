import type { DestinationStream } from 'pino';

/** LOG_FORMAT: `json` (one JSON object a line, for collectors), `pretty` (for people), `auto` (pretty on a terminal). */
export type LogFormat = 'auto' | 'json' | 'pretty';

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const COLORS: Record<string, string> = { TRACE: '90', DEBUG: '90', INFO: '32', WARN: '33', ERROR: '31', FATAL: '35' };

/** A value as it reads in a line of text: plain when it has no spaces, quoted or as JSON otherwise. */
function show(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  return JSON.stringify(v);
}

/**
 * One pino line (JSON) as a line for people: `12:04:31.512 INFO  message key=value …`. The fields are
 * the JSON's (already redacted); name, pid and hostname are left out. A line that is not JSON passes as it is.
 */
export function formatLine(line: string, color = false): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line);
  } catch {
    return line.endsWith('\n') ? line : `${line}\n`;
  }
  const { time, level, msg, pid: _pid, hostname: _host, name: _name, ...fields } = rec;
  const at = typeof time === 'number' ? new Date(time).toISOString().slice(11, 23) : '';
  const lvl = LEVELS[level as number] ?? String(level);
  const tag = color ? `\u001b[${COLORS[lvl] ?? '0'}m${lvl.padEnd(5)}\u001b[0m` : lvl.padEnd(5);
  const rest = Object.entries(fields).map(([k, v]) => `${k}=${show(v)}`);
  return `${[at, tag, typeof msg === 'string' ? msg : '', ...rest].filter(Boolean).join(' ')}\n`;
}

/** Where the root logger writes: human-readable lines on a terminal (or when asked), else pino's own JSON. */
export function logDestination(format: LogFormat, out: NodeJS.WritableStream & { isTTY?: boolean } = process.stdout): DestinationStream | undefined {
  const pretty = format === 'pretty' || (format === 'auto' && out.isTTY === true);
  if (!pretty) return undefined;
  const color = out.isTTY === true && !process.env.NO_COLOR;
  return { write: (line: string) => void out.write(formatLine(line, color)) };
}
