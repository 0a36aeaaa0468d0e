import type { FC } from 'hono/jsx';
import type { getMessage } from '../../queries/analyses.js';
import { CsrfField, Layout, Table, Time, VerdictBadge, urls, type PageContext } from './layout.js';

export type MessageData = Awaited<ReturnType<typeof getMessage>>;

const List: FC<{ items: string[]; empty: string; testid?: string }> = ({ items, empty, testid }) =>
  items.length === 0 ? (
    <p class="muted">{empty}</p>
  ) : (
    <ul data-testid={testid}>
      {items.map((r) => (
        <li>{r}</li>
      ))}
    </ul>
  );

/** Detector counts from the stored signals (kinds and counts only; values are never stored). */
function sensitiveCounts(signals: unknown): [string, number][] {
  const s = (signals as { sensitive?: Record<string, number> } | null)?.sensitive;
  return s ? Object.entries(s).filter(([, n]) => n > 0) : [];
}

/** What the mailbox's user said of this message last (llm_feedback), if anything. */
export type UserWord = { said: string; how: string; at: Date } | null;

export const MessagePage: FC<{ page: PageContext; m: MessageData; word: UserWord; notice?: string | null }> = ({ page, m, word, notice }) => {
  const a = m.analysis;
  const title = a?.subject ?? `UID ${m.email_id}`;
  const counts = sensitiveCounts(a?.signals);
  return (
    <Layout title={title} page={page} notice={notice}>
      <p>
        <a href={urls.mailbox(m.mailbox)}>← {m.mailbox}</a>
      </p>
      <h1>{title}</h1>
      <section class="card" aria-labelledby="h-verdict">
        <h2 id="h-verdict">Analysis</h2>
        <dl class="facts">
          <dt>State</dt>
          <dd data-testid="state">{m.state}</dd>
          <dt>Verdict</dt>
          <dd>
            <VerdictBadge verdict={a?.status === 'analyzed' ? a.verdict : null} phishing={a?.is_phishing} />
            {a?.confidence !== null && a?.confidence !== undefined ? ` confidence ${Math.round(a.confidence * 100)}%` : ''}
            {a?.verdict_source ? ` · decided by ${a.verdict_source}${a.rule ? ` (rule ${a.rule})` : ''}` : ''}
          </dd>
          {a?.phishing_score !== null && a?.phishing_score !== undefined ? (
            <>
              <dt>Phishing score</dt>
              <dd>{a.phishing_score.toFixed(2)}</dd>
            </>
          ) : null}
          <dt>From</dt>
          <dd>{a?.from_address ? `${a.from_name ?? ''} <${a.from_address}>`.trim() : 'not kept'}</dd>
          <dt>Received</dt>
          <dd>
            <Time at={a?.received_at} />
          </dd>
          <dt>Date header</dt>
          <dd>
            <Time at={a?.date} /> <span class="muted">(as the sender wrote it)</span>
          </dd>
          <dt>Folder</dt>
          <dd>{`${m.folder} · UIDVALIDITY ${m.uidvalidity} · UID ${m.email_id}`}</dd>
          <dt>Category</dt>
          <dd>{a?.category ?? '–'}</dd>
          <dt>Priority</dt>
          <dd>{a?.priority !== null && a?.priority !== undefined ? `${a.priority}${a.priority_reason ? ` · ${a.priority_reason}` : ''}` : '–'}</dd>
          <dt>Tags</dt>
          <dd>{a?.tags.length ? a.tags.join(', ') : '–'}</dd>
          <dt>Summary</dt>
          <dd data-testid="summary">{a?.summary ?? <span class="muted">none stored</span>}</dd>
          {a?.left_out.length ? (
            <>
              <dt>Left out</dt>
              <dd>{`${a.left_out.join(' and ')}: the queue was behind, so only the verdict was asked for`}</dd>
            </>
          ) : null}
          {a?.reply_suggestion ? (
            <>
              <dt>Reply suggestion</dt>
              <dd>{a.reply_suggestion}</dd>
            </>
          ) : null}
          {a?.skip_reason ? (
            <>
              <dt>Skipped</dt>
              <dd>{a.skip_reason}</dd>
            </>
          ) : null}
          {a?.error || m.queue?.last_error ? (
            <>
              <dt>Error</dt>
              <dd>{a?.error ?? m.queue?.last_error}</dd>
            </>
          ) : null}
          <dt>Moved</dt>
          <dd>{a?.moved_to_folder ? `to ${a.moved_to_folder}${a.moved_to_uid ? ` (UID ${a.moved_to_uid})` : ''}` : 'no'}</dd>
          <dt>Keywords set</dt>
          <dd>{a?.keywords?.length ? a.keywords.join(' ') : 'none'}</dd>
          <dt>Model</dt>
          <dd>{a?.model ? `${a.model} · prompt ${a.prompt_version}${a.cache_hit ? ' · from the content cache' : ''}` : '–'}</dd>
        </dl>
        <form method="post" action={`${urls.message({ ...m, uid: m.email_id })}/reanalyse`}>
          <CsrfField token={page.csrf} />
          <button class="secondary" type="submit">
            Re-analyse
          </button>
        </form>
      </section>
      {a ? (
        <section class="card" aria-labelledby="h-word">
          <h2 id="h-word">Your word on it</h2>
          <p data-testid="user-word">
            {word ? (
              <>
                Said <strong>{word.said}</strong> ({word.how}), <Time at={word.at} />.
              </>
            ) : (
              'Nothing said yet. mailsight compares its verdicts with what users say.'
            )}
          </p>
          <form method="post" action={`${urls.message({ ...m, uid: m.email_id })}/feedback`}>
            <CsrfField token={page.csrf} />
            <button class="secondary" type="submit" name="said" value="junk">
              Junk
            </button>{' '}
            <button class="secondary" type="submit" name="said" value="legit">
              Not junk
            </button>
          </form>
        </section>
      ) : null}
      <div class="grid">
        <section class="card" aria-labelledby="h-model-reasons">
          <h2 id="h-model-reasons">The model's reasons</h2>
          <List items={a?.reasons ?? []} empty="None given." testid="model-reasons" />
        </section>
        <section class="card" aria-labelledby="h-signal-reasons">
          <h2 id="h-signal-reasons">Deterministic signals</h2>
          <List items={a?.signal_reasons ?? []} empty="Nothing found." testid="signal-reasons" />
        </section>
        <section class="card" aria-labelledby="h-sensitive">
          <h2 id="h-sensitive">Sensitive data</h2>
          <p class="muted">Kinds and counts only: mailsight never stores the values.</p>
          <List items={a?.sensitive ?? []} empty="None reported by the model." testid="sensitive" />
          {counts.length ? <List items={counts.map(([k, n]) => `${k}: ${n} found by the detectors`)} empty="" /> : null}
        </section>
      </div>
      <section class="card" aria-labelledby="h-audit">
        <h2 id="h-audit">Audit trail</h2>
        <Table
          labelledBy="h-audit"
          testid="audit"
          rows={m.audit}
          empty="No entries."
          columns={[
            ['When', (e) => <Time at={e.at} />],
            ['Action', (e) => e.action],
            ['Verdict', (e) => e.verdict ?? '–'],
            ['Reason', (e) => [e.rule ? `rule ${e.rule}` : '', e.reason ?? ''].filter(Boolean).join(' · ') || '–'],
          ]}
        />
      </section>
    </Layout>
  );
};
