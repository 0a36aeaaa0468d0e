// `node --import ./no-typescript.mjs …`: the process fails if anything loads TypeScript tooling
// (tsx, typescript, esbuild) or a .ts file: the built package must run without a compiler.
import { register } from 'node:module';

register(
  'data:text/javascript,' +
    encodeURIComponent(`
const FORBIDDEN = /^(tsx|typescript|esbuild)(\\/|$)/;
export async function resolve(specifier, context, next) {
  if (FORBIDDEN.test(specifier)) throw new Error('TypeScript tooling loaded at run time: ' + specifier);
  const r = await next(specifier, context);
  if (/\\.(c|m)?tsx?$/.test(new URL(r.url).pathname)) throw new Error('a .ts file loaded at run time: ' + r.url);
  return r;
}`),
);
