// One key flooding forced re-analyses against another mailbox's new mail (issue: hardening):
// `npm run bench fairness`.
import { and, eq } from 'drizzle-orm';
import { createApiKey } from '../src/queries/keys.js';
import { emailAnalysis } from '../src/db/schema.js';
import { loadCorpus } from '../test/support/corpus.js';
import { deliver } from '../test/support/lmtp.js';
import { testMessage } from '../test/support/message.js';
import { startStack, type Stack } from '../test/support/stack.js';
import { median, table, writeResult } from './lib.js';

const FLOOD = 41; // the hostile review's count
const MODEL_MS = 200;
const CONCURRENT_JOBS = 2;
const REPEATS = 5;
const ALICE = 'alice@example.test';
const BOB = 'bob@example.test';

/** Delivers one message to Bob and waits for its analysis: ms from delivery to stored row. */
async function bobLatency(stack: Stack, n: number): Promise<number> {
  const subject = `Bob's new mail ${n}`;
  const started = performance.now();
  await deliver(stack.dc.lmtpPort, testMessage(`bob-${n}`, BOB, subject, 'A new message for Bob.'), [BOB]);
  for (;;) {
    const rows = await stack.db.orm.select({ id: emailAnalysis.id }).from(emailAnalysis).where(and(eq(emailAnalysis.mailbox, BOB), eq(emailAnalysis.subject, subject)));
    if (rows.length) return performance.now() - started;
    await new Promise((r) => setTimeout(r, 10));
  }
}

export async function runFairnessBench() {
  const stack = await startStack({ users: [ALICE, BOB], mailsight: { processing: { concurrentJobs: CONCURRENT_JOBS } } });
  try {
    stack.ollama!.set({ delayMs: MODEL_MS });
    // Alice's mailbox: FLOOD analysed messages, the review's setting.
    for (const m of loadCorpus(FLOOD)) await deliver(stack.dc.lmtpPort, m.raw, [ALICE]);
    for (;;) {
      const rows = await stack.db.orm.select({ id: emailAnalysis.id }).from(emailAnalysis).where(eq(emailAnalysis.mailbox, ALICE));
      if (rows.length >= FLOOD) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const aliceKey = (await createApiKey(stack.db, ALICE)).key;
    const flood = () =>
      Promise.all(
        Array.from({ length: FLOOD }, (_, i) =>
          fetch(`${stack.ms.baseUrl}/api/v1/add/llm/analyze`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-api-key': aliceKey },
            body: JSON.stringify({ mailbox: ALICE, email_id: i + 1, force: true }),
          }).then((r) => r.status),
        ),
      );

    // Unloaded and loaded take turns, so drift on a shared machine hits both alike.
    const unloaded: number[] = [];
    const loaded: number[] = [];
    const statuses: Record<string, number> = {};
    for (let i = 0; i < REPEATS; i++) {
      unloaded.push(await bobLatency(stack, i * 2));
      for (const s of await flood()) statuses[s] = (statuses[s] ?? 0) + 1;
      loaded.push(await bobLatency(stack, i * 2 + 1));
      // Let the flood drain before the next unloaded measurement.
      await new Promise((r) => setTimeout(r, (FLOOD * MODEL_MS) / CONCURRENT_JOBS + 500));
    }
    const ratio = median(loaded) / median(unloaded);
    table([
      { case: "Bob's new message, nothing else queued", 'median ms': median(unloaded), runs: unloaded.map((v) => v.toFixed(0)).join(' ') },
      { case: `the same, right after Alice's key sent ${FLOOD} forced re-analyses`, 'median ms': median(loaded), runs: loaded.map((v) => v.toFixed(0)).join(' ') },
    ]);
    console.log(`ratio loaded/unloaded: ${ratio.toFixed(2)} (target <= 2); flood answers: ${JSON.stringify(statuses)}; model ${MODEL_MS} ms a call, ${CONCURRENT_JOBS} jobs at once`);
    const file = writeResult('fairness', { flood: FLOOD, modelMs: MODEL_MS, concurrentJobs: CONCURRENT_JOBS, unloadedMs: unloaded, loadedMs: loaded, ratio, floodStatuses: statuses, target: 2, met: ratio <= 2 });
    console.log(`written ${file}`);
  } finally {
    await stack.close();
  }
}
