#!/usr/bin/env node
// Runs the built CLI (dist/, made by `npm run build`, which `npm ci` runs through `prepare`).
import { existsSync } from 'node:fs';

const cli = new URL('../dist/cli.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write('mailsight: dist/ is missing; run `npm run build` (or `npm ci`, which builds it) first\n');
  process.exit(1);
}
await import(cli.href);
