import { parseArgs } from 'node:util';
import { llmClientFor, llmHostOf } from '../analysis/llm.js';
import { buildPrompt, PROMPT_VERSION } from '../analysis/prompt.js';
import { buildReport, formatReport } from '../analysis/report.js';
import { computeSignals, evidence, promptSignals } from '../analysis/signals/index.js';
import { decideBySignals, decideVerdict } from '../analysis/verdict.js';
import { loadConfig } from '../config.js';
import { parseMessage, stripMboxFrom } from '../mail/parse.js';
import { out, readInput, UsageError } from './common.js';

const ANALYZE_HELP = `usage: mailsight analyze <file.eml | -> [--json] [--signals-only] [--ollama <url>] [--model <name>]
                                            [--lang <language>] [--reply]

The same parsing, signals, prompt and LLM call as the service, on one message (an mbox "From "
line in front is skipped), printed as a report or, with --json, as JSON. Nothing is stored.
  --signals-only  no LLM call: the verdict from mailsight's deterministic checks (works without Ollama)
  --ollama, --model  default OLLAMA_HOST and OLLAMA_MODEL
  --lang          language of the summary and reasons; --reply  ask for a reply suggestion`;

export async function analyzeCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      json: { type: 'boolean' },
      'signals-only': { type: 'boolean' },
      ollama: { type: 'string' },
      model: { type: 'string' },
      lang: { type: 'string' },
      reply: { type: 'boolean' },
      help: { type: 'boolean' },
    },
  });
  if (values.help) {
    out(ANALYZE_HELP);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError('analyze needs one message file, or - for standard input');
  const raw = stripMboxFrom(await readInput(positionals[0]!));
  if (raw.length === 0) throw new UsageError('the message is empty');
  const config = loadConfig({
    ...process.env,
    ...(values.ollama ? { OLLAMA_HOST: values.ollama } : {}),
    ...(values.model ? { OLLAMA_MODEL: values.model } : {}),
  });
  const parsed = await parseMessage(raw);
  const signals = computeSignals(parsed);
  const ev = evidence(signals);
  let report;
  if (values['signals-only']) {
    report = buildReport(parsed, signals, ev, { ...decideBySignals(ev), verdictSource: 'signals' });
  } else {
    const llm = llmClientFor(config);
    let answer;
    try {
      const source = await llm.fit(
        (maxBodyChars) => buildPrompt(parsed, { maxBodyChars, replySuggestion: Boolean(values.reply), summaryLanguage: values.lang, signals: promptSignals(signals, ev) }),
        config.processing.maxEmailSize,
      );
      answer = await llm.analyse(source);
    } catch (err) {
      process.stderr.write(`mailsight: ${(err as Error).message} (${llmHostOf(config)}, model ${config.llm.model}); --signals-only works without Ollama\n`);
      return 1;
    }
    report = buildReport(parsed, signals, ev, decideVerdict(answer.result, ev), {
      name: config.llm.model,
      promptVersion: PROMPT_VERSION,
      result: answer.result,
      promptTokens: answer.usage.promptTokens,
      completionTokens: answer.usage.completionTokens,
      ms: answer.usage.ms,
    });
  }
  out(values.json ? JSON.stringify(report, null, 2) : formatReport(report));
  return 0;
}
