import { sql } from 'drizzle-orm';
import { expect, it } from 'vitest';
import { campaignKeys, linkHosts, MIN_CONTENT_CHARS } from '../../src/analysis/campaigns.js';
import { recordFeedback } from '../../src/analysis/feedback.js';
import type { MessageKey } from '../../src/domain/message-key.js';
import { ContentProtection } from '../../src/privacy/protection.js';
import { Sealer } from '../../src/privacy/sealer.js';
import { eraseMailbox } from '../../src/queries/erase.js';
import { enqueue } from '../../src/queue/jobs.js';
import { pipelineTestbed, queueDrainer, UIDVALIDITY } from '../support/pipeline-harness.js';
import { DRIVERS, describeWith, postgresAvailable, silentLogger, testConfig } from '../support/services.js';
import { createApp } from '../../src/app.js';
import { createApiKey } from '../../src/queries/keys.js';

/**
 * Campaign clean-up (issue 22, part 4), through the pipeline as the workers run it (fake mailbox,
 * stand-in model): 20 personalised messages from one sender with the same links to 20 mailboxes,
 * of which only the 15th says what the stand-in calls phishing.
 */

const pgUp = await postgresAvailable();
const ADMIN = 'campaigns-admin-key-0123456789';
const NAMES = ['Anna', 'Ben', 'Carla', 'Dev', 'Eli', 'Fay', 'Gus', 'Hana', 'Ivo', 'Jo', 'Kim', 'Lea', 'Max', 'Nia', 'Oto', 'Pia', 'Quin', 'Rua', 'Sam', 'Tea'];
const GREETINGS = ['Dear', 'Hello', 'Hi', 'Good morning'];
const plain = new ContentProtection({ sealer: null, keepHeaders: true });

/** The `i`th message of a campaign by `sender` (a domain of its own per test, so campaigns do not meet). */
function campaignMessage(i: number, mailbox: string, phishing: boolean, sender = 'billing-portal.example') {
  const name = NAMES[i - 1]!;
  const body = [
    `${GREETINGS[i % GREETINGS.length]} ${name},`,
    '',
    `your statement for November (reference ${1000 + i * 7}) is ready. See https://${sender}/statements/${i} for the details,`,
    phishing ? 'and verify your account within 24 hours or it will be closed.' : 'and thank you for being a customer.',
    'Your billing team (https://cdn.mailer.example/logo.png)',
  ].join('\r\n');
  return [
    `From: Billing <billing@${sender}>`,
    `To: ${name} <${mailbox}>`,
    `Subject: Your November statement, ${name}`,
    `Message-ID: <stmt-${i}@${sender}>`,
    'Date: Mon, 30 Nov 2026 10:00:00 +0000',
    '',
    body,
    '',
  ].join('\r\n');
}

it('campaign keys: the same content, or the same sender with the same link hosts; short bodies have no content key', () => {
  const a = { from: { address: 'Billing@Billing-Portal.example' }, text: 'x'.repeat(MIN_CONTENT_CHARS), links: [{ href: 'https://billing-portal.example/a' }, { href: 'mailto:x@y' }] };
  const b = { ...a, from: { address: 'billing@billing-portal.example' }, text: 'y'.repeat(MIN_CONTENT_CHARS), links: [{ href: 'https://BILLING-PORTAL.example/b?x=1' }] };
  expect(linkHosts(a)).toEqual(['billing-portal.example']);
  const [ca, sa] = campaignKeys(a, plain);
  const [cb, sb] = campaignKeys(b, plain);
  expect(ca).not.toBe(cb);
  expect(sa).toBe(sb);
  expect(campaignKeys({ ...a, text: 'Thanks!' }, plain)).toEqual([sa]);
  expect(campaignKeys({ ...a, links: [] }, plain)).toEqual([ca]);
  // Keyed with ENCRYPTION_KEY: other keys, still equal across mailboxes.
  const sealed = new ContentProtection({ sealer: new Sealer(Buffer.alloc(32, 7)), keepHeaders: true });
  expect(campaignKeys(a, sealed)[1]).toBe(campaignKeys(b, sealed)[1]);
  expect(campaignKeys(a, sealed)[1]).not.toBe(sa);
});

for (const driver of DRIVERS) {
  describeWith('PostgreSQL', driver === 'pglite' || pgUp)(`campaign clean-up on ${driver}`, () => {
    const bed = pipelineTestbed(driver);
    const drain = queueDrainer(bed);
    // Each mailbox has a UIDVALIDITY of its own, as on a real server.
    const keyOf = (run: string, i: number): MessageKey => ({ mailbox: `${run}-${i}@example.test`, folder: 'INBOX', uidvalidity: UIDVALIDITY + i, uid: 1 });
    const deliver = async (run: string, i: number, config: Record<string, unknown>) => {
      const key = keyOf(run, i);
      bed.mailbox.put(key, campaignMessage(i, key.mailbox, i === 15, `${run}.billing.example`));
      await enqueue(bed.t.db, { ...key, source: 'push' });
      return drain(config);
    };
    const verdicts = (run: string) =>
      bed.t.db.rows<{ mailbox: string; verdict: string; verdict_source: string; status: string; moved_to_folder: string | null }>(sql`
        select mailbox, verdict, verdict_source, status, moved_to_folder from llm_email_analysis where mailbox like ${`${run}-%`} order by mailbox`);
    const trail = (key: MessageKey) =>
      bed.t.db.rows<{ action: string; reason: string; details: any }>(sql`
        select action, reason, details from llm_audit_log where mailbox = ${key.mailbox} and uid = ${key.uid} order by id`);

    for (const dryRun of [false, true]) {
      const run = dryRun ? 'dry' : 'live';
      it(`DRY_RUN=${dryRun}: the 15th is phishing; the 13 earlier ones still legit are raised and ${dryRun ? 'would be moved' : 'moved'}, the rescued one is left alone, the 5 later ones need no call`, async () => {
        const config = { dryRun };
        for (let i = 1; i <= 14; i++) await deliver(run, i, config);
        expect((await verdicts(run)).map((v) => v.verdict)).toEqual(Array(14).fill('legit'));
        // The user of mailbox 3 said it is fine (say, the dashboard's Not junk).
        await recordFeedback(bed.t.db, keyOf(run, 3), 'legit', 'dashboard', { protection: plain });
        const calls = bed.ollama.state.chats.length;
        bed.mailbox.acted.length = 0;

        const ran = await deliver(run, 15, config);
        expect(bed.ollama.state.chats.length - calls).toBe(1);
        expect(ran[0]!.outcome).toMatchObject({ state: 'done', llmCalls: 1 });
        const raised = ran.slice(1);
        expect(raised).toHaveLength(14);
        expect(raised.every((r) => r.job.source === 'campaign' && r.outcome.llmCalls === 0)).toBe(true);
        expect(raised.filter((r) => r.outcome.detail?.startsWith('campaign: left alone'))).toHaveLength(1);

        const after = await verdicts(run);
        const byMailbox = Object.fromEntries(after.map((v) => [v.mailbox.split('@')[0], v]));
        expect(byMailbox[`${run}-15`]).toMatchObject({ verdict: 'phishing', verdict_source: 'model' });
        expect(byMailbox[`${run}-3`]).toMatchObject({ verdict: 'legit', verdict_source: 'model', moved_to_folder: null });
        const others = after.filter((v) => !v.mailbox.startsWith(`${run}-3@`) && !v.mailbox.startsWith(`${run}-15@`));
        expect(others).toHaveLength(13);
        for (const v of others) expect(v).toMatchObject({ verdict: 'phishing', verdict_source: 'campaign', moved_to_folder: dryRun ? null : 'Junk' });
        expect(bed.mailbox.acted).toHaveLength(dryRun ? 0 : 14);

        const first = await trail(keyOf(run, 1));
        const campaignEntry = first.find((e) => e.action === 'campaign');
        expect(campaignEntry?.reason).toMatch(/^verdict by campaign: another message of the same campaign .* was judged phishing$/);
        expect(campaignEntry?.details).toEqual({ trigger: { ...keyOf(run, 15) } });
        expect(first.map((e) => e.action)).toEqual(dryRun ? ['analyzed', 'would_flag', 'campaign', 'would_flag', 'would_move'] : ['analyzed', 'flagged', 'campaign', 'flagged', 'moved']);

        // Later: the verdict without a call, acted on, with the campaign on the trail.
        for (let i = 16; i <= 20; i++) await deliver(run, i, config);
        expect(bed.ollama.state.chats.length - calls).toBe(1);
        const later = (await verdicts(run)).filter((v) => Number(v.mailbox.split('-')[1]!.split('@')[0]) >= 16);
        expect(later).toHaveLength(5);
        for (const v of later) expect(v).toMatchObject({ verdict: 'phishing', verdict_source: 'campaign', status: 'skipped', moved_to_folder: dryRun ? null : 'Junk' });
        expect((await trail(keyOf(run, 17))).map((e) => e.action)).toContain('campaign');
      });
    }

    it('junk from the users of two mailboxes marks the campaign as spam, and the other messages are raised', async () => {
      const run = 'votes';
      for (let i = 1; i <= 5; i++) {
        const key = keyOf(run, i);
        bed.mailbox.put(key, campaignMessage(i, key.mailbox, false, 'votes.billing.example'));
        await enqueue(bed.t.db, { ...key, source: 'push' });
      }
      await drain({});
      const ctx = { protection: plain, campaignWindowHours: 72 };
      await recordFeedback(bed.t.db, keyOf(run, 1), 'junk', 'keyword', ctx);
      expect(await drain({})).toEqual([]);
      await recordFeedback(bed.t.db, keyOf(run, 2), 'junk', 'move', ctx);
      const raised = await drain({});
      expect(raised.map((r) => r.job.mailbox).sort()).toEqual([1, 3, 4, 5].map((i) => keyOf(run, i).mailbox));
      const after = await verdicts(run);
      expect(after.filter((v) => v.verdict_source === 'campaign').map((v) => [v.mailbox, v.verdict])).toEqual([1, 3, 4, 5].map((i) => [keyOf(run, i).mailbox, 'spam']));
      // The message whose word marked the campaign keeps its verdict; the word is on record (feedback).
      expect(after.find((v) => v.mailbox === keyOf(run, 2).mailbox)).toMatchObject({ verdict: 'legit', verdict_source: 'model' });
    });

    it("a raised message's trail names the message that marked the campaign: for the admin; a mailbox's own key learns only that it was another mailbox", async () => {
      const app = createApp({ config: testConfig({ apiKey: ADMIN }), db: bed.t.db, logger: silentLogger, pushCredentials: null });
      const key = keyOf('live', 1);
      const own = (await createApiKey(bed.t.db, key.mailbox)).key;
      const trailAs = async (apiKey: string) => {
        const res = await app.request(`/api/v1/get/llm/analysis?mailbox=${encodeURIComponent(key.mailbox)}&email_id=1`, { headers: { 'x-api-key': apiKey } });
        expect(res.status).toBe(200);
        return ((await res.json()) as any).audit.find((e: { action: string }) => e.action === 'campaign');
      };
      expect((await trailAs(ADMIN)).details).toEqual({ trigger: keyOf('live', 15) });
      expect((await trailAs(own)).details).toEqual({ trigger: 'a message in another mailbox' });
      expect(JSON.stringify(await trailAs(own))).not.toContain('live-15');
    });

    it('the campaign reaches no one after its window', async () => {
      const [c] = await bed.t.db.rows<{ n: number }>(sql`select count(*)::int as n from llm_campaigns`);
      expect(Number(c!.n)).toBeGreaterThan(0);
      await bed.t.db.rows(sql`update llm_campaigns set at = now() - interval '73 hours'`);
      const key = keyOf('late', 16);
      bed.mailbox.put(key, campaignMessage(16, key.mailbox, false, 'live.billing.example'));
      await enqueue(bed.t.db, { ...key, source: 'push' });
      await drain({});
      const [v] = await verdicts('late');
      expect(v).toMatchObject({ verdict: 'legit', verdict_source: 'model' });
    });

    it('erasing a mailbox erases its campaign memberships and the marks its messages set', async () => {
      const erased = await eraseMailbox(bed.t.db, keyOf('live', 15).mailbox);
      expect(erased.mailbox).toBe(keyOf('live', 15).mailbox);
      const [left] = await bed.t.db.rows<{ members: number; marks: number }>(sql`
        select (select count(*) from llm_campaign_members where mailbox = ${keyOf('live', 15).mailbox})::int as members,
               (select count(*) from llm_campaigns where mailbox = ${keyOf('live', 15).mailbox})::int as marks`);
      expect(left).toEqual({ members: 0, marks: 0 });
    });
  });
}
