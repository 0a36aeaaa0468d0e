import { createRoute, z } from '@hono/zod-openapi';
import { feedbackContext, recordFeedback } from '../analysis/feedback.js';
import { FEEDBACK_SAID } from '../domain/states.js';
import { assertMailboxAccess } from '../http/api-auth.js';
import { AppError } from '../http/errors.js';
import { API_ERRORS, API_SECURITY, NOT_FOUND, json, openApiApp } from '../http/openapi.js';
import * as p from '../http/params.js';
import { knownUidvalidity } from '../queries/analyses.js';
import type { ApiDeps } from './deps.js';

const feedbackBody = z
  .object({
    mailbox: p.mailbox,
    email_id: p.uid,
    folder: p.folder.optional(),
    said: z.enum(FEEDBACK_SAID).openapi({ description: 'What the user says the message is' }),
  })
  .strict();

const feedbackResult = z
  .object({
    mailbox: z.string(),
    folder: z.string(),
    uidvalidity: z.number().int(),
    email_id: z.number().int(),
    said: z.enum(FEEDBACK_SAID),
    how: z.string(),
    verdict: z.string().nullable().openapi({ description: "mailsight's verdict at this moment" }),
    outcome: z.enum(['agree', 'false_junk', 'missed_junk', 'no_verdict']),
    sender_learned: z.boolean().openapi({ description: "Also learned for the message's sender in this mailbox (preference learn_senders)" }),
  })
  .openapi('Feedback');

const feedback = createRoute({
  method: 'post',
  path: '/add/llm/feedback',
  summary: "A user's word on a message: junk or legit",
  description:
    "Recorded against mailsight's verdict (the latest word per message counts) and shown in /stats `quality`. `folder` defaults to INBOX and the newest UIDVALIDITY seen for it is used.",
  security: API_SECURITY,
  request: { body: { required: true, content: { 'application/json': { schema: feedbackBody } } } },
  responses: { 200: json(feedbackResult, 'Recorded'), ...API_ERRORS, ...NOT_FOUND },
});

export function feedbackRoutes(deps: ApiDeps) {
  return openApiApp().openapi(feedback, async (c) => {
    const b = c.req.valid('json');
    assertMailboxAccess(c, b.mailbox);
    const folder = b.folder ?? 'INBOX';
    const uidvalidity = await knownUidvalidity(deps.db, { mailbox: b.mailbox, folder });
    if (uidvalidity === undefined) throw new AppError('NOT_FOUND', `mailsight has no record of ${folder} of ${b.mailbox}`);
    const key = { mailbox: b.mailbox, folder, uidvalidity, uid: b.email_id };
    const f = await recordFeedback(deps.db, key, b.said, 'api', feedbackContext(deps));
    deps.onFeedback?.(f);
    return c.json({ mailbox: key.mailbox, folder, uidvalidity, email_id: key.uid, said: f.said, how: f.how, verdict: f.verdict, outcome: f.outcome, sender_learned: f.senderLearned }, 200);
  });
}
