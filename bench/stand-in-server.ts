// The Ollama stand-in as its own process, so a benchmark's model does not share mailsight's event loop.
import { startOllamaStandIn } from '../test/support/ollama-stand-in.js';

const standIn = await startOllamaStandIn({
  port: Number(process.env.PORT),
  delayMs: Number(process.env.STANDIN_DELAY_MS ?? 0),
  slots: process.env.STANDIN_SLOTS ? Number(process.env.STANDIN_SLOTS) : undefined,
});
process.once('SIGTERM', () => void standIn.close().then(() => process.exit(0)));
