import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { corpusFiles, CORPUS_DIR } from '../support/corpus.js';
import { startOllamaStandIn, type OllamaStandIn } from '../support/ollama-stand-in.js';

const BIN = new URL('../../bin/mailsight.js', import.meta.url).pathname;
const SPAM = `${CORPUS_DIR}/spam-2/${corpusFiles('spam-2')[2]}`;
const HAM = `${CORPUS_DIR}/easy-ham-1/${corpusFiles('easy-ham-1')[0]}`;
let ollama: OllamaStandIn;
beforeAll(async () => {
  ollama = await startOllamaStandIn();
});
afterAll(async () => ollama?.close());

async function analyze(args: string[], stdin?: Buffer) {
  const child = spawn(process.execPath, [BIN, 'analyze', ...args], { env: { ...process.env, OLLAMA_HOST: ollama.url, LOG_LEVEL: 'warn' } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  child.stdin.end(stdin);
  const code = await new Promise<number | null>((r) => child.on('close', r));
  return { code, stdout, stderr };
}

it('analyses a corpus file with the model: verdict, summary, the model and the signals apart', async () => {
  const r = await analyze([HAM]);
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/^Subject: {2}.+/m);
  expect(r.stdout).toMatch(/^Verdict: {2}LEGIT \(confidence 0\.60, decided by model/m);
  expect(r.stdout).toMatch(/^Summary: {2}Message about/m);
  expect(r.stdout).toMatch(/^Model: {4}llama3\.2:3b, prompt \S+, \d+ ms, \d+\+\d+ tokens$/m);
  expect(ollama.state.chats).toHaveLength(1);
});

it('--signals-only needs no Ollama; --json gives the whole report', async () => {
  const r = await analyze([SPAM, '--signals-only', '--json', '--ollama', 'http://127.0.0.1:9']);
  expect(r.code).toBe(0);
  const report = JSON.parse(r.stdout);
  expect(report.verdict).toMatchObject({ verdict: 'spam', verdictSource: 'signals' });
  expect(report.model).toBeUndefined();
  expect(report.signals.bulk.score).toBeGreaterThanOrEqual(7);
  expect(report.signalReasons.join(' ')).toMatch(/bulk-mail signs/);
});

it('--signals-only: mail with no sign of spam is legit at a low confidence, with every sign, its points and the thresholds', async () => {
  const ham = await analyze([HAM, '--signals-only']);
  expect(ham.code).toBe(0);
  expect(ham.stdout).toMatch(/^Verdict: {2}LEGIT \(confidence 0\.50, decided by signals; phishing score 0\.00\)$/m);
  expect(ham.stdout).toMatch(/^Why: {6}no phishing or spam evidence and -5 bulk-mail points; the signals see no content/m);
  expect(ham.stdout).toMatch(/^ {2}bulk-mail signs: -5 points \(threshold 7\.5: spam at that or more\)$/m);
  expect(ham.stdout).toMatch(/^ +-4 {2}a reply in a thread$/m);
  expect(ham.stdout).toMatch(/^ {2}phishing evidence: 0\.00 \(decides at 0\.80, whatever the model says\), none found$/m);

  // Spam below the threshold: unknown, and the signs that make up its points are all there.
  const files = corpusFiles('spam-2');
  let below: { stdout: string; json: any } | undefined;
  for (const f of files.slice(0, 60)) {
    const r = await analyze([`${CORPUS_DIR}/spam-2/${f}`, '--signals-only', '--json']);
    const report = JSON.parse(r.stdout);
    if (report.verdict.verdict === 'unknown' && report.evidence.bulk.signs.length >= 2) {
      below = { stdout: (await analyze([`${CORPUS_DIR}/spam-2/${f}`, '--signals-only'])).stdout, json: report };
      break;
    }
  }
  expect(below).toBeDefined();
  const { bulk } = below!.json.evidence;
  expect(bulk.threshold).toBe(7.5);
  expect(bulk.points).toBeLessThan(7.5);
  expect(bulk.signs.reduce((sum: number, x: { points: number }) => sum + x.points, 0)).toBeCloseTo(bulk.points);
  expect(below!.stdout).toContain(`${bulk.points} bulk-mail points, below 7.5`);
  for (const x of bulk.signs) expect(below!.stdout).toMatch(new RegExp(`^ +${x.points > 0 ? '\\+' : ''}${String(x.points).replace('.', '\\.')} {2}${x.name.replace(/[.*+?^${}()|[\]\\"]/g, '\\$&')}$`, 'm'));
});

it('reads standard input with -', async () => {
  const raw = Buffer.from('From: a@b.example\r\nSubject: Stdin test\r\n\r\nHello there.\r\n');
  const r = await analyze(['-', '--signals-only'], raw);
  expect(r.code).toBe(0);
  expect(r.stdout).toContain('Subject:  Stdin test');
});

it('a missing file or an unreachable Ollama is a clear error, never a stack trace', async () => {
  const missing = await analyze(['/nonexistent.eml']);
  expect(missing).toMatchObject({ code: 2, stderr: expect.stringContaining('cannot read /nonexistent.eml: ENOENT') });
  const down = await analyze([HAM, '--ollama', 'http://127.0.0.1:9']);
  expect(down.code).toBe(1);
  expect(down.stderr).toMatch(/cannot reach Ollama.*--signals-only works without Ollama/);
  expect(down.stderr).not.toMatch(/\bat \S+ \(/);
  const usage = await promisify(execFile)(process.execPath, [BIN, 'analyze', '--help']);
  expect(usage.stdout).toContain('--signals-only');
});
