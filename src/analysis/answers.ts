import type { Db } from '../db/client.js';
import type { ContentProtection } from '../privacy/protection.js';
import type { LlmUsage } from './llm.js';
import type { AnalysisResult } from './result.js';
import { findByContentHash } from './store.js';

/** A model's answer; `usage` is null when it came from a stored row instead of the model. */
export type LlmAnswer = { result: AnalysisResult; usage: LlmUsage | null };

/**
 * The content cache (the pipeline's "cache" step): the same prompt to the same model gives the same
 * answer, so identical content is analysed once. A copy being analysed right now in this process is
 * waited for; a stored row with the same content hash is reused.
 */
export class Answers {
  /** Identical content being analysed right now: later copies wait for the first call. */
  private readonly inFlight = new Map<string, Promise<LlmAnswer>>();

  constructor(
    private readonly db: Db,
    private readonly protection: ContentProtection,
  ) {}

  /** A stored analysis of the same content, as a model answer. */
  private async stored(hash: string): Promise<LlmAnswer | null> {
    const found = await findByContentHash(this.db, hash);
    if (!found) return null;
    const row = this.protection.revealAnalysis(found);
    // The row holds what its preferences kept; the hash includes those preferences, so it is complete.
    const result = {
      summary: row.summary ?? '',
      category: row.category ?? 'other',
      tags: row.tags,
      // The model's answer, not the verdict stored for that mailbox (its user's word may have settled it).
      verdict: row.modelVerdict ?? row.verdict,
      confidence: row.modelConfidence ?? row.confidence ?? 0,
      reasons: row.reasons,
      priority: row.priority ?? 5,
      priority_reason: row.priorityReason ?? '',
      sensitive: row.sensitive,
      language: row.language ?? '',
      reply_suggestion: row.replySuggestion,
    } as AnalysisResult;
    return { result, usage: null };
  }

  /**
   * The answer for this content: from a copy being analysed right now, from a stored row, or from
   * `ask` (the model). The caller that asked the model calls `stored()` once its row is written, so a
   * copy arriving in between finds the row instead of asking again. `fresh` (a forced re-analysis)
   * asks the model even when a stored answer exists.
   */
  async for(hash: string, ask: () => Promise<LlmAnswer>, fresh: boolean): Promise<LlmAnswer & { shared: boolean; stored: () => void }> {
    const noop = () => {};
    const pending = this.inFlight.get(hash);
    if (pending) return { ...(await pending), shared: true, stored: noop };
    // Registered before the first await: a copy that arrives while we look in the table waits for us.
    const p = fresh ? ask() : this.stored(hash).then((hit) => hit ?? ask());
    this.inFlight.set(hash, p);
    const stored = () => {
      if (this.inFlight.get(hash) === p) this.inFlight.delete(hash);
    };
    try {
      const answer = await p;
      return { ...answer, shared: answer.usage === null, stored };
    } catch (err) {
      stored();
      throw err;
    }
  }
}
