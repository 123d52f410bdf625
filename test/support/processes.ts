import type { ChildProcess } from 'node:child_process';

/**
 * A last line of defence for servers a test starts itself: if the test
 * process exits without its afterAll having stopped them (a crash, a worker
 * torn down on timeout), they are SIGKILLed rather than left running on the
 * machine. A stopped (SIGSTOPped) child is continued first so that the kill
 * is not merely queued.
 */
const children = new Set<ChildProcess>();
let installed = false;

export function track<T extends ChildProcess>(child: T): T {
  children.add(child);
  child.once('exit', () => children.delete(child));
  if (!installed) {
    installed = true;
    process.once('exit', () => {
      for (const running of children) {
        try {
          running.kill('SIGCONT');
          running.kill('SIGKILL');
        } catch {
          // already gone
        }
      }
    });
  }
  return child;
}
