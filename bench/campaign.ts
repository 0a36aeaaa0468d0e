// Campaign clean-up (issue: learn from what users do): `npm run bench campaign`.
// A real Dovecot (2.3, Lua driver) and mailsight on Postgres. 1,000 mailboxes each receive one
// personalised message of a campaign (one sender, the same link hosts), judged legit; then one more
// says what the stand-in model calls phishing. Measured: from that message's stored verdict to the
// last earlier message raised and acted on (moved to Junk, or with DRY_RUN=true its would_move on
// record); then 100 later messages of the campaign, and the LLM calls they needed.
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { Session } from 'node:inspector/promises';
import { sql } from 'drizzle-orm';
import { dovecotAvailable, imapSession } from '../test/support/dovecot.js';
import { LmtpClient } from '../test/support/lmtp.js';
import { startStack } from '../test/support/stack.js';
import { table, writeResult } from './lib.js';

const SIBLINGS = Number(process.env.BENCH_CAMPAIGN_SIBLINGS ?? 1000);
const LATER = Number(process.env.BENCH_CAMPAIGN_LATER ?? 100);
/** mailsight's jobs at once (LLM_CONCURRENT_JOBS), and the baseline's IMAP connections at once. */
const JOBS = Number(process.env.BENCH_CAMPAIGN_JOBS ?? 4);
/**
 * BENCH_CAMPAIGN_DOVECOT=performance: Dovecot's login processes in high-performance mode and its imap
 * processes reused from user to user (all users share one system uid, as on Mailcow), instead of
 * Dovecot's default of a new imap-login and a new imap process for every login.
 */
const PERFORMANCE_MODE = `
service imap-login {
  service_count = 0
  process_min_avail = 2
}
service imap {
  service_count = 0
  process_min_avail = ${Math.max(4, JOBS)}
}`;
const DOVECOT_MODE = process.env.BENCH_CAMPAIGN_DOVECOT === 'performance' ? 'performance' : 'default';
const users = (n: number) => Array.from({ length: n }, (_, i) => `m${i + 1}@example.test`);

function statement(i: number, to: string, phishing: boolean) {
  return [
    'From: Billing <billing@billing-portal.example>',
    `To: Customer ${i} <${to}>`,
    `Subject: Your November statement, customer ${i}`,
    `Message-ID: <bench-${i}@billing-portal.example>`,
    'Date: Mon, 30 Nov 2026 10:00:00 +0000',
    '',
    `Dear customer ${i},`,
    `your statement (reference ${100_000 + i}) is ready at https://billing-portal.example/statements/${i}`,
    phishing ? 'and verify your account within 24 hours or it will be closed.' : 'and thank you for being a customer.',
    'Your billing team (https://cdn.mailer.example/logo.png)',
    '',
  ].join('\r\n');
}

async function waitUntil(what: string, check: () => Promise<boolean>, limitMs: number, progress?: () => Promise<string>) {
  const start = Date.now();
  let shown = start;
  while (!(await check())) {
    if (Date.now() > start + limitMs) throw new Error(`${what}: not within ${limitMs / 1000} s`);
    // A line every 10 s, so that a stall shows where it began.
    if (progress && Date.now() - shown >= 10_000) {
      shown = Date.now();
      console.log(`  ${what}: ${Math.round((shown - start) / 1000)} s, ${await progress()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * The baseline: what the same clean-up costs in IMAP alone, on the same server in the same run. For
 * each mailbox, as mailsight's action does it (as many at once as its workers): a master
 * login, SELECT, the keywords, \Seen, the Junk folder (made when missing) and UID MOVE. mailsight
 * is stopped first and a receiver that answers every push at once (204) takes its port: the
 * baseline pays for Dovecot's pushes, not for mailsight's handling of them. (An earlier version left
 * the port closed: Dovecot's refused pushes then cost about 250 ms a mailbox, more than the
 * clean-up itself with Dovecot's processes reused.)
 */
async function bareImapCleanup(stack: Awaited<ReturnType<typeof startStack>>, mailboxes: string[], concurrency: number) {
  const t0 = performance.now();
  let next = 0;
  // Where the time goes, summed over the connections: the master login, the commands, the logout.
  const spent = { loginSec: 0, commandsSec: 0, logoutSec: 0 };
  const worker = async () => {
    while (next < mailboxes.length) {
      const user = mailboxes[next++]!;
      let t = performance.now();
      const client = await imapSession(stack.dc, user);
      spent.loginSec += (performance.now() - t) / 1000;
      t = performance.now();
      try {
        await client.mailboxOpen('INBOX');
        const [uid] = (await client.search({ all: true }, { uid: true })) || [];
        if (uid === undefined) continue;
        await client.messageFlagsAdd(String(uid), ['$Junk', '$Phishing'], { uid: true });
        if (!(await client.list()).some((f) => f.path === 'Junk')) await client.mailboxCreate('Junk');
        await client.messageFlagsAdd(String(uid), ['\\Seen'], { uid: true });
        await client.messageMove(String(uid), 'Junk', { uid: true });
      } finally {
        spent.commandsSec += (performance.now() - t) / 1000;
        t = performance.now();
        await client.logout();
        spent.logoutSec += (performance.now() - t) / 1000;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { seconds: (performance.now() - t0) / 1000, ...spent };
}

async function once(dryRun: boolean) {
  const all = users(SIBLINGS + 1 + LATER);
  const stack = await startStack({
    driver: 'lua',
    users: all,
    mailsight: { dryRun, processing: { concurrentJobs: JOBS } },
    dovecot: DOVECOT_MODE === 'performance' ? { extraConfig: PERFORMANCE_MODE } : {},
  });
  try {
    const count = async (where: ReturnType<typeof sql>) => Number((await stack.db.rows<{ n: number }>(sql`select count(*)::int as n from llm_email_analysis where ${where}`))[0]!.n);
    const lmtp = await LmtpClient.connect(stack.dc.lmtpPort);
    for (let i = 1; i <= SIBLINGS; i++) await lmtp.deliver(statement(i, all[i - 1]!, false), [all[i - 1]!]);
    await waitUntil('the earlier messages analysed', async () => (await count(sql`status = 'analyzed'`)) >= SIBLINGS, 600_000);
    const callsBefore = stack.ollama!.state.chats.length;

    const trigger = SIBLINGS + 1;
    const profiling = process.env.BENCH_CAMPAIGN_PROFILE ? new Session() : undefined;
    if (profiling) {
      profiling.connect();
      await profiling.post('Profiler.enable');
      await profiling.post('Profiler.start');
    }
    await lmtp.deliver(statement(trigger, all[trigger - 1]!, true), [all[trigger - 1]!]);
    const done = dryRun
      ? sql`exists (select 1 from llm_audit_log l where l.mailbox = llm_email_analysis.mailbox and l.uid = llm_email_analysis.uid and l.action = 'would_move')`
      : sql`moved_to_uid is not null`;
    const cleaned = () => count(sql`verdict_source = 'campaign' and ${done}`);
    const progress = async () => {
      const states = await stack.db.rows<{ state: string; n: number }>(sql`select state, count(*)::int as n from llm_processing_queue where source = 'campaign' group by 1 order by 1`);
      return `${await cleaned()} cleaned; campaign jobs ${states.map((r) => `${r.state} ${r.n}`).join(', ')}; IMAP sessions ${stack.ms.imap.openSessions}`;
    };
    await waitUntil('the campaign cleaned up', async () => (await cleaned()) >= SIBLINGS, Number(process.env.BENCH_CAMPAIGN_WAIT_SEC ?? 600) * 1000, progress).catch(async (err) => {
      const states = await stack.db.rows(sql`select state, source, last_error, count(*)::int as n from llm_processing_queue group by 1, 2, 3 order by 4 desc limit 10`);
      const verdicts = await stack.db.rows(sql`select verdict, verdict_source, status, count(*)::int as n from llm_email_analysis group by 1, 2, 3`);
      throw new Error(`${(err as Error).message}; queue: ${JSON.stringify(states)}; analyses: ${JSON.stringify(verdicts)}`);
    });
    if (profiling) {
      // BENCH_CAMPAIGN_PROFILE=file: this process's CPU profile of the clean-up (mailsight runs in it).
      const { profile } = await profiling.post('Profiler.stop');
      writeFileSync(process.env.BENCH_CAMPAIGN_PROFILE!, JSON.stringify(profile));
      profiling.disconnect();
    }
    const [span] = await stack.db.rows<{ verdict_at: Date | string; last_at: Date | string }>(sql`
      select (select created_at from llm_email_analysis where message_id = ${`<bench-${trigger}@billing-portal.example>`}) as verdict_at,
             greatest((select max(updated_at) from llm_email_analysis where verdict_source = 'campaign'),
                      (select max(at) from llm_audit_log where action in ('moved', 'would_move', 'campaign'))) as last_at`);
    const cleanupSec = (new Date(span!.last_at).getTime() - new Date(span!.verdict_at).getTime()) / 1000;
    const callsAtTrigger = stack.ollama!.state.chats.length - callsBefore;

    for (let i = trigger + 1; i <= trigger + LATER; i++) await lmtp.deliver(statement(i, all[i - 1]!, false), [all[i - 1]!]);
    lmtp.close();
    await waitUntil('the later messages judged', async () => (await count(sql`verdict_source = 'campaign'`)) >= SIBLINGS + LATER, 600_000);
    const callsLater = stack.ollama!.state.chats.length - callsBefore - callsAtTrigger;
    // The baseline needs mailboxes whose message is still in INBOX: with DRY_RUN=true all of them are.
    let baseline: Awaited<ReturnType<typeof bareImapCleanup>> | null = null;
    if (dryRun) {
      await stack.stopMailsight();
      const answering = createServer((req, res) => {
        req.resume();
        req.on('end', () => res.writeHead(204).end());
      });
      await new Promise<void>((resolve) => answering.listen(stack.port, '127.0.0.1', resolve));
      try {
        baseline = await bareImapCleanup(stack, all.slice(0, SIBLINGS), JOBS);
      } finally {
        answering.closeAllConnections();
        await new Promise((resolve) => answering.close(resolve));
      }
    }
    return { dryRun, dovecot: DOVECOT_MODE, jobsAtOnce: JOBS, siblings: SIBLINGS, cleanupSec, baselineImapSec: baseline?.seconds ?? null, baselineImapSpent: baseline, llmCallsForTrigger: callsAtTrigger, later: LATER, llmCallsForLater: callsLater, llmCallsSaved: LATER - callsLater };
  } finally {
    await stack.close();
  }
}

export async function runCampaignBench() {
  if (!dovecotAvailable('2.3')) throw new Error('needs root and Dovecot (apt-get install dovecot-core dovecot-imapd dovecot-lmtpd)');
  // BENCH_CAMPAIGN_MODES: dry (DRY_RUN=true, with the bare-IMAP baseline), real (moves), or both.
  const modes = (process.env.BENCH_CAMPAIGN_MODES ?? 'dry,real').split(',');
  const runs = [];
  if (modes.includes('dry')) runs.push(await once(true));
  if (modes.includes('real')) runs.push(await once(false));
  table(
    runs.map((r) => ({
      mode: r.dryRun ? 'DRY_RUN=true' : 'DRY_RUN=false (moved)',
      'earlier messages': r.siblings,
      'verdict -> last cleaned (s)': Number(r.cleanupSec.toFixed(2)),
      'bare IMAP, same moves (s)': r.baselineImapSec === null ? '' : Number(r.baselineImapSec.toFixed(2)),
      // Per mailbox, on one connection: what the baseline's time was made of.
      'bare: login / commands / logout (ms each)': r.baselineImapSpent
        ? [r.baselineImapSpent.loginSec, r.baselineImapSpent.commandsSec, r.baselineImapSpent.logoutSec].map((s) => Math.round((s * 1000) / r.siblings)).join(' / ')
        : '',
      'LLM calls, trigger': r.llmCallsForTrigger,
      'later messages': r.later,
      'LLM calls, later': r.llmCallsForLater,
    })),
  );
  const name = ['campaign', ...(JOBS === 4 ? [] : [`${JOBS}-jobs`]), ...(DOVECOT_MODE === 'default' ? [] : [`dovecot-${DOVECOT_MODE}`])].join('-');
  console.log(`results: ${writeResult(name, { runs })}`);
}
