import { VERDICTS } from '../domain/states.js';
import { z } from 'zod';

/** What the model must return: one object, validated by zod and sent to Ollama as `format`. */

export const CATEGORIES = [
  'personal',
  'work',
  'finance',
  'shopping',
  'travel',
  'newsletter',
  'marketing',
  'social',
  'notification',
  'security',
  'support',
  'spam',
  'other',
] as const;

export { VERDICTS };

export const SENSITIVE_TYPES = [
  'payment_card',
  'bank_account',
  'credentials',
  'api_key',
  'private_key',
  'national_id',
  'health',
  'personal_address',
  'phone_number',
  'other',
] as const;

export const analysisResultSchema = z.object({
  summary: z.string().max(1000).describe('two or three sentences, in the requested language'),
  category: z.enum(CATEGORIES),
  tags: z.array(z.string().max(40)).max(8),
  verdict: z.enum(VERDICTS),
  confidence: z.number().min(0).max(1),
  reasons: z.array(z.string().max(300)).max(6),
  priority: z.number().int().min(1).max(10),
  priority_reason: z.string().max(300),
  sensitive: z.array(z.enum(SENSITIVE_TYPES)).max(10),
  language: z.string().max(16).describe('ISO 639-1 code of the message language'),
  // llama.cpp's grammar parser refuses a repetition bound of 2,000 or more (MAX_REPETITION_THRESHOLD),
  // and Ollama compiles this schema with it: maxLength 2000 made every call a 400.
  reply_suggestion: z.string().max(1500).nullable(),
});

export type AnalysisResult = z.infer<typeof analysisResultSchema>;

/** The JSON schema Ollama constrains its output with (`format`), derived from the zod schema. */
export const analysisJsonSchema = z.toJSONSchema(analysisResultSchema, { target: 'draft-7' });
