import { z, type OpenAPIHono } from '@hono/zod-openapi';
import { errorSchema } from '../http/openapi.js';
import { PUSH_PATH } from '../push/credentials.js';
import { luaPushBody, oxPushBody } from '../push/payload.js';

type Registry = OpenAPIHono['openAPIRegistry'];

const text = (description: string, type = 'text/plain') => ({ description, content: { [type]: { schema: z.string() } } });
const err = (description: string) => ({ description, content: { 'application/json': { schema: errorSchema } } });

/** The routes that are not OpenAPIHono routes (push, health, metrics, docs), so the document lists every route. */
export function documentOtherRoutes(registry: Registry) {
  registry.registerComponent('securitySchemes', 'PushBasic', {
    type: 'http',
    scheme: 'basic',
    description: 'PUSH_USERNAME / PUSH_PASSWORD, as in the Dovecot driver URL',
  });
  const pushBody = z.union([oxPushBody, luaPushBody]).openapi('PushBody', {
    description: "Dovecot's OX push_notification driver body, or the JSON that dovecot/push.lua sends (driver: lua)",
  });
  const pushOutcome = z
    .object({
      status: z.enum(['queued', 'expunged', 'ignored']),
      new: z.boolean().optional(),
      id: z.number().int().nullable().optional(),
      dequeued: z.boolean().optional(),
      analysisRemoved: z.boolean().optional(),
      reason: z.string().optional(),
    })
    .openapi('PushOutcome');
  for (const method of ['put', 'post'] as const) {
    registry.registerPath({
      method,
      path: PUSH_PATH,
      summary: `Dovecot push notification (${method === 'put' ? 'OX driver' : 'Lua driver'})`,
      security: [{ PushBasic: [] }],
      request: { body: { required: true, content: { 'application/json': { schema: pushBody } } } },
      responses: {
        202: { description: 'Recorded (or acknowledged and ignored)', content: { 'application/json': { schema: pushOutcome } } },
        400: err('Malformed JSON or an invalid field, named'),
        401: err('Wrong or missing credentials'),
        413: err('Body over 64 KiB'),
        429: err('Too many failed auth attempts from this address; see Retry-After'),
        503: err('Database unavailable (answered within PUSH_DB_TIMEOUT_MS)'),
      },
    });
  }
  registry.registerPath({
    method: 'get',
    path: '/health',
    summary: 'Liveness: the process answers',
    responses: { 200: { description: 'Alive', content: { 'application/json': { schema: z.object({ status: z.literal('ok') }) } } } },
  });
  const readiness = z.object({ status: z.enum(['ready', 'not_ready']), components: z.record(z.string(), z.unknown()) });
  registry.registerPath({
    method: 'get',
    path: '/ready',
    summary: 'Readiness: database, IMAP master login, Ollama and the model',
    responses: {
      200: { description: 'Every component works', content: { 'application/json': { schema: readiness } } },
      503: { description: 'A component does not work; see its error', content: { 'application/json': { schema: readiness } } },
    },
  });
  registry.registerComponent('securitySchemes', 'MetricsToken', {
    type: 'http',
    scheme: 'bearer',
    description: 'METRICS_TOKEN, when it is set; without it /metrics is open',
  });
  registry.registerPath({
    method: 'get',
    path: '/metrics',
    summary: 'Prometheus metrics',
    security: [{ MetricsToken: [] }, {}],
    responses: { 200: text('Prometheus text exposition format'), 401: err('METRICS_TOKEN is set and the request does not carry it') },
  });
  registry.registerPath({ method: 'get', path: '/openapi.json', summary: 'This document', responses: { 200: text('OpenAPI 3.1', 'application/json') } });
  registry.registerPath({ method: 'get', path: '/docs', summary: 'Interactive API documentation (Swagger UI)', responses: { 200: text('HTML page', 'text/html') } });
}
