import { describe, expect, it } from 'vitest';
import { compileRules, rulesSchema } from '../../src/analysis/rules.js';
import type { Evidence } from '../../src/analysis/signals/index.js';
import { decideBySignals, decideVerdict } from '../../src/analysis/verdict.js';
import { planActions } from '../../src/mail/actions.js';

const ev = (phishing = 0, spam = 0, bulk = 0, bulkScore = 0): Evidence => ({ phishing, spam, bulk, reasons: [], items: [], bulkScore, bulkSigns: [] });

describe('the verdict floor', () => {
  it('the model decides while the signals are weak', () => {
    expect(decideVerdict({ verdict: 'legit', confidence: 0.7 }, ev(0.5))).toMatchObject({ verdict: 'legit', confidence: 0.7, verdictSource: 'model', phishingScore: 0.5 });
    expect(decideVerdict({ verdict: 'spam', confidence: 0.9 }, ev(0.2))).toMatchObject({ verdict: 'spam', isSpam: true, isPhishing: false });
  });
  it('strong phishing evidence cannot be talked away', () => {
    for (const verdict of ['legit', 'unknown', 'spam'] as const) {
      expect(decideVerdict({ verdict, confidence: 0.95 }, ev(0.85))).toMatchObject({ verdict: 'phishing', verdictSource: 'signals', isPhishing: true, confidence: 0.85 });
    }
  });
  it('model and signals agreeing on phishing reinforce each other', () => {
    const d = decideVerdict({ verdict: 'phishing', confidence: 0.6 }, ev(0.5));
    expect(d).toMatchObject({ verdict: 'phishing', verdictSource: 'model', phishingScore: 0.8, confidence: 0.8 });
  });
  it('an upstream spam verdict overrides legit and unknown, not scam or phishing', () => {
    expect(decideVerdict({ verdict: 'legit', confidence: 0.9 }, ev(0, 0.9))).toMatchObject({ verdict: 'spam', verdictSource: 'signals', confidence: 0.9 });
    expect(decideVerdict({ verdict: 'scam', confidence: 0.7 }, ev(0, 0.9))).toMatchObject({ verdict: 'scam', verdictSource: 'model' });
  });
  it('bulk-mail signs decide only when no model is asked', () => {
    expect(decideVerdict({ verdict: 'legit', confidence: 0.8 }, ev(0, 0, 0.85))).toMatchObject({ verdict: 'legit', verdictSource: 'model' });
    expect(decideVerdict(null, ev(0, 0, 0.85))).toMatchObject({ verdict: 'spam', verdictSource: 'rule', confidence: 0.85 });
  });
  it('without a model (a skip rule) the signals decide, or the verdict is unknown', () => {
    expect(decideVerdict(null, ev(0.9))).toMatchObject({ verdict: 'phishing', verdictSource: 'rule' });
    expect(decideVerdict(null, ev(0.1, 0.1))).toMatchObject({ verdict: 'unknown', verdictSource: 'rule', confidence: 0 });
  });
});

describe('the signals alone', () => {
  it('no sign of spam or phishing: legit, at a confidence that says how little the signals know', () => {
    expect(decideBySignals(ev(0, 0, 0, -4))).toMatchObject({ verdict: 'legit', confidence: 0.5 });
    expect(decideBySignals(ev(0, 0, 0.2, 2.5))).toMatchObject({ verdict: 'legit', confidence: 0.4 });
  });
  it('some signs below the threshold, or any phishing or upstream evidence: unknown; past the floor: their verdict', () => {
    expect(decideBySignals(ev(0, 0, 0.3, 3))).toMatchObject({ verdict: 'unknown', confidence: 0 });
    expect(decideBySignals(ev(0.1, 0, 0, 0))).toMatchObject({ verdict: 'unknown' });
    expect(decideBySignals(ev(0, 0, 0.85, 8))).toMatchObject({ verdict: 'spam', confidence: 0.85 });
    expect(decideBySignals(ev(0.9))).toMatchObject({ verdict: 'phishing' });
  });
});

describe('escalation rules', () => {
  const rules = rulesSchema.parse([
    { name: 'deny-list', match: { from: ['*@spammer.example', 'bad@*'] }, action: 'skip', verdict: 'spam' },
    { name: 'obvious-spam', match: { min_score: 10 }, action: 'skip' },
    { name: 'uribl', match: { spam_tests: ['URIBL_BLACK', 'R_SUSPICIOUS_URL'] }, action: 'skip' },
    { name: 'lists-quiet', match: { headers: { 'List-Id': 'announce\\.', Precedence: '^bulk$' } }, action: 'skip' },
    { name: 'borderline', match: { min_score: 3, max_score: 9.9 }, action: 'analyze' },
  ]);
  const decide = compileRules(rules);
  const msg = (from: string, headers: Record<string, string> = {}) => ({ from: { address: from }, allHeaders: headers });
  const sa = (score: number, tests: string[] = []) => ({ spamAssassin: { flagged: score >= 5, score, tests } });

  it.each([
    ['a denied domain', msg('x@spammer.example'), {}, 'deny-list', 'skip'],
    ['a denied local part', msg('bad@anywhere.example'), {}, 'deny-list', 'skip'],
    ['a high score', msg('a@ok.example'), sa(12), 'obvious-spam', 'skip'],
    ['exactly the minimum', msg('a@ok.example'), sa(10), 'obvious-spam', 'skip'],
    ['a listed SpamAssassin test', msg('a@ok.example'), sa(1, ['URIBL_BLACK']), 'uribl', 'skip'],
    ['a listed rspamd symbol', msg('a@ok.example'), { rspamd: { score: 1, symbols: ['R_SUSPICIOUS_URL'] } }, 'uribl', 'skip'],
    ['every header pattern', msg('a@ok.example', { 'list-id': '<announce.lists.example>', precedence: 'bulk' }), {}, 'lists-quiet', 'skip'],
    ['a borderline score', msg('a@ok.example'), sa(5), 'borderline', 'analyze'],
  ])('%s', (_what, p, s, rule, action) => {
    expect(decide(p, s)).toMatchObject({ action, rule: { name: rule } });
  });

  it.each([
    ['no rule matches', msg('a@ok.example'), sa(1)],
    ['only one of two header patterns', msg('a@ok.example', { 'list-id': '<announce.lists.example>' }), {}],
    ['a score rule without any score', msg('a@ok.example'), {}],
    ['a deny pattern that only contains the domain', msg('x@notspammer.example.org'), {}],
  ])('%s: analyse (the default)', (_what, p, s) => {
    expect(decide(p, s)).toEqual({ action: 'analyze' });
  });

  it('with no rules everything is analysed', () => {
    expect(compileRules([])(msg('x@spammer.example'), sa(50))).toEqual({ action: 'analyze' });
  });
});

describe('mailbox action plans', () => {
  const settings = { keywords: true, moveToJunk: true, junkThreshold: 0.8, junkFolder: 'Junk', markSeen: true };
  const prefs = { phishingAlerts: true, autoCategorize: true };
  const d = (verdict: 'legit' | 'spam' | 'scam' | 'phishing', confidence: number) => ({ verdict, confidence, isPhishing: verdict === 'phishing' });

  it('phishing above the threshold: Junk, read, $Phishing and $Junk', () => {
    expect(planActions(d('phishing', 0.9), { category: 'security' }, prefs, settings, 'INBOX')).toEqual({ keywords: ['$Phishing', '$Junk'], moveToJunk: true, junkFolder: 'Junk', markSeen: true });
  });
  it('spam below the threshold stays, unflagged', () => {
    expect(planActions(d('spam', 0.6), { category: 'marketing' }, prefs, settings, 'INBOX')).toEqual({ keywords: [], moveToJunk: false, junkFolder: 'Junk', markSeen: false });
  });
  it('legit mail gets its category keyword (and Important when urgent), nothing else', () => {
    expect(planActions(d('legit', 0.9), { category: 'work', priority: 9 }, prefs, settings, 'INBOX').keywords).toEqual(['$label2', '$label1']);
    expect(planActions(d('legit', 0.9), { category: 'newsletter', priority: 3 }, prefs, settings, 'INBOX')).toMatchObject({ keywords: ['newsletter'], moveToJunk: false });
  });
  it("the user's preferences and the settings switch parts off", () => {
    expect(planActions(d('phishing', 0.9), {}, { phishingAlerts: false, autoCategorize: true }, settings, 'INBOX').keywords).toEqual(['$Junk']);
    expect(planActions(d('legit', 0.9), { category: 'work' }, { phishingAlerts: true, autoCategorize: false }, settings, 'INBOX').keywords).toEqual([]);
    expect(planActions(d('spam', 0.95), {}, prefs, { ...settings, moveToJunk: false }, 'INBOX')).toMatchObject({ moveToJunk: false, keywords: ['$Junk'] });
    expect(planActions(d('spam', 0.95), {}, prefs, { ...settings, keywords: false }, 'INBOX').keywords).toEqual([]);
  });
  it('a message already in Junk is not moved again', () => {
    expect(planActions(d('spam', 0.95), {}, prefs, settings, 'Junk').moveToJunk).toBe(false);
  });
});
