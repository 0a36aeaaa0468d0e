import type { MiddlewareHandler } from 'hono';
import type { Logger } from '../logger.js';

/**
 * One log line per request: `quietBelow` (a status) and up at info, what answered below it at
 * debug (the push endpoint's successes arrive by the thousand). The line is only built when its
 * level is on.
 */
export function accessLog(logger: Logger, quietBelow = 0): MiddlewareHandler {
  return async (c, next) => {
    const started = performance.now();
    await next();
    const status = c.res.status;
    const level = status < quietBelow ? 'debug' : 'info';
    if (!logger.isLevelEnabled(level)) return;
    const line = {
      requestId: c.get('requestId') as string | undefined,
      method: c.req.method,
      path: c.req.path,
      status,
      ms: Math.round((performance.now() - started) * 10) / 10,
    };
    logger[level](line, 'request');
  };
}
