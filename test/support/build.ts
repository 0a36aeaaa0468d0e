import { execFileSync } from 'node:child_process';

/**
 * vitest globalSetup: the tests that run `mailsight` as a process run the built package (dist/), as
 * users do, so it is rebuilt from the sources under test first (incremental: about 3 s unchanged).
 */
export default function build() {
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: new URL('../..', import.meta.url).pathname, stdio: 'inherit' });
}
