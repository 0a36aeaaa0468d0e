import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startOllamaStandIn, type OllamaStandIn } from '../support/ollama-stand-in.js';

const ROOT = new URL('../..', import.meta.url).pathname;
let ollama: OllamaStandIn;
let dir: string;
beforeAll(async () => {
  ollama = await startOllamaStandIn();
  dir = mkdtempSync(join(tmpdir(), 'mailsight-quality-'));
});
afterAll(async () => {
  await ollama?.close();
  rmSync(dir, { recursive: true, force: true });
});

it('npm run bench:quality runs labelled corpus mail through the full analysis and prints precision and recall', async () => {
  const out = join(dir, 'quality.json');
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', 'bench/quality.ts', '--ollama', ollama.url, '--model', 'llama3.2:3b', '--limit', '30', '--out', out],
    { cwd: ROOT },
  );
  expect(stdout).toMatch(/model llama3\.2:3b on http:\/\/127\.0\.0\.1:\d+, prompt \S+, 30 messages/);
  expect(stdout).toMatch(/unwanted mail \(spam, scam, phishing\): precision [\d.]+%, recall [\d.]+%/);
  for (const group of ['easy-ham-1', 'hard-ham-1', 'spam-1']) expect(stdout).toContain(group);
  const result = JSON.parse(readFileSync(out, 'utf8'));
  expect(result.messages).toBe(30);
  const counted = Object.values(result.byGroup as Record<string, any>).reduce((n: number, t: any) => n + t.tp + t.fp + t.fn + t.tn, 0);
  expect(counted).toBe(30);
  // Every message reached the model.
  expect(ollama.state.chats).toHaveLength(30);
}, 120_000);
