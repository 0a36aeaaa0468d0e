import type { Context } from 'hono';
import type { Logger } from '../logger.js';
import { AppError } from './errors.js';
import { incomingOf } from './incoming.js';

export interface AuthFailureLimits {
  /** Failed attempts from one address within `windowMs` before it is refused. */
  maxFailures: number;
  windowMs: number;
  /** How long an address is refused once over the limit. */
  blockMs: number;
}

export const DEFAULT_AUTH_FAILURE_LIMITS: AuthFailureLimits = { maxFailures: 20, windowMs: 60_000, blockMs: 300_000 };
/** Addresses tracked at most: a flood from many addresses cannot grow the map without bound. */
const MAX_TRACKED = 10_000;

interface Entry {
  windowStart: number;
  failures: number;
  blockedUntil: number;
}

/** The client's address as the socket says (no proxy headers are trusted). */
export function clientAddress(c: Context): string {
  return incomingOf(c)?.socket?.remoteAddress ?? 'local';
}

/**
 * Failed push-auth and API-key attempts per source address: past the limit the address gets 429
 * until its block ends. Each failure is logged with the address, never with what was presented.
 */
export class AuthFailureLimiter {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly what: string,
    private readonly logger: Logger,
    private readonly limits: AuthFailureLimits = DEFAULT_AUTH_FAILURE_LIMITS,
    private readonly now: () => number = Date.now,
  ) {}

  /** Throws 429 while `address` is blocked. */
  check(address: string): void {
    const e = this.entries.get(address);
    const left = e ? e.blockedUntil - this.now() : 0;
    if (left > 0) {
      throw new AppError('TOO_MANY_REQUESTS', `too many failed ${this.what} attempts from ${address}; try again in ${Math.ceil(left / 1000)} s`, {
        retryAfterSec: Math.ceil(left / 1000),
      });
    }
  }

  failed(address: string, reason: string, path: string): void {
    const now = this.now();
    let e = this.entries.get(address);
    if (!e || now - e.windowStart > this.limits.windowMs) {
      if (!e && this.entries.size >= MAX_TRACKED) this.prune(now);
      e = { windowStart: now, failures: 0, blockedUntil: e?.blockedUntil ?? 0 };
      this.entries.set(address, e);
    }
    e.failures++;
    this.logger.warn({ address, path, reason, failures: e.failures }, `${this.what} failed`);
    if (e.failures >= this.limits.maxFailures && e.blockedUntil <= now) {
      e.blockedUntil = now + this.limits.blockMs;
      this.logger.warn({ address, blockSec: this.limits.blockMs / 1000 }, `${this.what}: address refused after ${e.failures} failures`);
    }
  }

  private prune(now: number) {
    for (const [address, e] of this.entries) {
      if (now - e.windowStart > this.limits.windowMs && e.blockedUntil <= now) this.entries.delete(address);
    }
    // Still full (a flood from many addresses): forget the oldest.
    for (const address of this.entries.keys()) {
      if (this.entries.size < MAX_TRACKED) break;
      this.entries.delete(address);
    }
  }
}
