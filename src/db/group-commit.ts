/**
 * Group commit for a DataLoader: its batches go to the database one at a
 * time. A batch goes at once (next tick) when none is in flight; otherwise
 * it waits for the one in flight to settle and takes everything that queued
 * meanwhile. A lone call pays no delay; a burst (thousands of sign-ins or
 * subscription starts after a restart) costs a few statements instead of one
 * per call, and on these paths a statement's socket write costs the server
 * more CPU than the rest of the call (`npm run bench -- --only connect,storm`).
 * A batch waits at most `maxWaitMs` for the one in flight: a statement stuck
 * on one connection (a half-open socket, a row lock) holds its own callers,
 * never every later one.
 *
 *   const commit = new GroupCommit();
 *   new DataLoader((keys) => commit.run(() => read(keys)), { cache: false, batchScheduleFn: commit.schedule });
 */
export class GroupCommit {
  private inFlight: Promise<unknown> | undefined;

  /** `maxWaitMs`: how long a batch waits for the one in flight before it goes anyway. */
  constructor(private readonly maxWaitMs = 1000) {}

  /** DataLoader's `batchScheduleFn`. */
  readonly schedule = (dispatch: () => void): void => {
    if (!this.inFlight) {
      process.nextTick(dispatch);
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    const go = () => {
      if (!timer) return; // went already
      clearTimeout(timer);
      timer = undefined;
      dispatch();
    };
    timer = setTimeout(go, this.maxWaitMs);
    timer.unref();
    void this.inFlight.then(go, go);
  };

  /** Runs one batch's statement, marking it in flight until it settles. */
  async run<T>(statement: () => Promise<T>): Promise<T> {
    const running = statement();
    this.inFlight = running;
    try {
      return await running;
    } finally {
      if (this.inFlight === running) this.inFlight = undefined;
    }
  }
}
