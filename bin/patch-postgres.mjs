#!/usr/bin/env node
// Run after `npm ci` (package.json "postinstall"; the Dockerfile runs it itself, as it installs with
// --ignore-scripts). Two changes to postgres.js's Query and Result classes that keep their
// behaviour and let V8 (Node 20) collect each query young:
//
// 1. `static get [Symbol.species]()` (a computed-key accessor) leaves the class constructor in
//    dictionary mode, and V8 then never optimizes `new Query()` / `new Result()`: every attempt is
//    "aborted ... Bailed out due to dependency change (StableMapDependency)" (--trace-opt: 9, 25 and
//    7 aborts of Query, Result and sql.unsafe in 12 s at 1,000 pushes/s). A static data property
//    (`static [Symbol.species] = Promise`) is the same species for .then() and .map(), and optimizes.
// 2. Query's per-instance closures `this.resolve = x => (...resolve(x))` on a pending promise: while
//    unoptimized, V8 kept every such query, and what it pointed to, alive through young collections
//    (promoted 1.1 MB per young collection at 1,000 queries/s, 29 KB with methods instead).
//    The same calls are now methods over the captured resolve/reject functions.
//
// Perf only: if postgres.js has changed and a pattern is not found, this says so and leaves the file
// as it is (mailsight works either way; test/integration/postgres-patch.test.ts notices).
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const MARK = '/* patched by mailsight bin/patch-postgres.mjs */';

const QUERY_CLOSURES = [
  '    this.resolve = x => (this.active = false, resolve(x))\n    this.reject = x => (this.active = false, reject(x))\n',
  '    this.settle = resolve\n    this.fail = reject\n',
];
const QUERY_SPECIES = [
  '  static get [Symbol.species]() {\n    return Promise\n  }\n',
  `  static [Symbol.species] = Promise ${MARK}

  resolve(x) {
    this.active = false
    return this.settle(x)
  }

  reject(x) {
    this.active = false
    return this.fail(x)
  }
`,
];
const RESULT_SPECIES = ['  static get [Symbol.species]() {\n    return Array\n  }\n', `  static [Symbol.species] = Array ${MARK}\n`];

function patch(file, replacements) {
  let text;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return 'absent';
  }
  if (text.includes(MARK)) return 'already';
  for (const [from] of replacements) if (!text.includes(from)) return 'unknown';
  for (const [from, to] of replacements) text = text.replace(from, to);
  writeFileSync(file, text);
  return 'patched';
}

/** postgres.js's directory (its package.json is not in its "exports", so found from its entry point). */
function packageRoot() {
  let dir;
  try {
    dir = dirname(createRequire(import.meta.url).resolve('postgres'));
  } catch {
    return undefined; // not installed: nothing to do
  }
  for (; dir !== dirname(dir); dir = dirname(dir)) {
    try {
      if (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).name === 'postgres') return dir;
    } catch {
      // no package.json here: one level up
    }
  }
  return undefined;
}

const root = packageRoot();
if (!root) process.exit(0);
const outcomes = [];
for (const dir of ['src', 'cjs/src']) {
  outcomes.push([`${dir}/query.js`, patch(join(root, dir, 'query.js'), [QUERY_CLOSURES, QUERY_SPECIES])]);
  outcomes.push([`${dir}/result.js`, patch(join(root, dir, 'result.js'), [RESULT_SPECIES])]);
}
const unknown = outcomes.filter(([, o]) => o === 'unknown').map(([f]) => f);
if (unknown.length) {
  process.stderr.write(`mailsight: postgres.js ${unknown.join(', ')} not as expected; left unpatched (works, collects garbage less well)\n`);
}
