import { upsertAnalysis, type NewAnalysis } from '../../src/analysis/store.js';
import type { Db } from '../../src/db/client.js';
import type { MessageKey } from '../../src/queue/jobs.js';

/** An analysed message, written through the pipeline's own store. */
export async function seedAnalysis(db: Db, k: MessageKey, over: Partial<NewAnalysis> = {}) {
  await upsertAnalysis(db, {
    ...k,
    status: 'analyzed',
    subject: `message ${k.uid}`,
    fromAddress: 'sender@example.test',
    summary: `summary of ${k.uid}`,
    category: 'work',
    tags: ['t'],
    verdict: 'legit',
    confidence: 0.9,
    reasons: ['looks normal'],
    isSpam: false,
    isPhishing: false,
    priority: 5,
    sensitive: [],
    model: 'stand-in',
    promptVersion: 'test',
    promptTokens: 100,
    completionTokens: 20,
    llmMs: 50,
    totalMs: 60,
    ...over,
  });
}

