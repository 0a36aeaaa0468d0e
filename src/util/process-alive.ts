/**
 * Whether process `pid` runs: signal 0 checks without sending anything. EPERM means it runs as
 * another user; only ESRCH means there is no such process.
 */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}
