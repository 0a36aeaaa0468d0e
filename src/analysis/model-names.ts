/**
 * Model names as Ollama compares them: `[host/][namespace/]model[:tag]`, with the default registry
 * `registry.ollama.ai`, namespace `library` and tag `latest`, case-insensitively. So `Llama3.2:3B`,
 * `library/llama3.2:3b` and `registry.ollama.ai/library/llama3.2:3b` are one model, as
 * `ollama run` and /api/chat find it; comparing them exactly said "not pulled" where chat worked.
 */

const DEFAULT_HOST = 'registry.ollama.ai';
const DEFAULT_NAMESPACE = 'library';
const DEFAULT_TAG = 'latest';

export function normaliseOllamaName(name: string): string {
  let rest = name.trim().toLowerCase();
  const at = rest.indexOf('@');
  if (at >= 0) rest = rest.slice(0, at); // a digest pins a version of the same name
  let tag = DEFAULT_TAG;
  const colon = rest.lastIndexOf(':');
  // A colon after the last slash is the tag; one before it is a registry's port.
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1) || DEFAULT_TAG;
    rest = rest.slice(0, colon);
  }
  const parts = rest.split('/');
  const model = parts.pop() ?? '';
  const namespace = parts.pop() ?? DEFAULT_NAMESPACE;
  const host = parts.pop() ?? DEFAULT_HOST;
  return `${host}/${namespace}/${model}:${tag}`;
}

export const sameOllamaModel = (a: string, b: string) => normaliseOllamaName(a) === normaliseOllamaName(b);
