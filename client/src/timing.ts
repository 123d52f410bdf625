import { ChatError, ErrorCode } from './errors.js';

/** Retry pacing shared by the socket, catch-up and sends. */
export interface RetryOptions {
  /** First delay; doubles per attempt. Default 500 ms. */
  initialDelayMs?: number;
  /** Ceiling of the delay. Default 30 s. */
  maxDelayMs?: number;
}

/**
 * Exponential backoff with jitter: attempt n waits a random time between half
 * and all of min(max, initial * 2^n). The randomness matters: after a server
 * restart every client reconnects at once, and without it they would keep
 * arriving in synchronized waves.
 */
export function backoffDelay(attempt: number, options: RetryOptions = {}): number {
  const initial = options.initialDelayMs ?? 500;
  const max = options.maxDelayMs ?? 30_000;
  const ceiling = Math.min(max, initial * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
}

/**
 * Resolves after `ms`, or early when `wake` fires; rejects with CLOSED or
 * ABORTED when a signal fires first. Timers and listeners never outlive it.
 */
export function sleep(ms: number, options: { signal?: AbortSignal | (AbortSignal | undefined)[]; wake?: WakeSignal } = {}): Promise<void> {
  const signals = (Array.isArray(options.signal) ? options.signal : [options.signal]).filter((s): s is AbortSignal => s !== undefined);
  const { wake } = options;
  return new Promise<void>((resolve, reject) => {
    const aborted = signals.find((s) => s.aborted);
    if (aborted) return reject(abortReason(aborted));
    const done = () => {
      clearTimeout(timer);
      for (const s of signals) s.removeEventListener('abort', onAbort);
      unwake?.();
    };
    const timer = setTimeout(() => {
      done();
      resolve();
    }, ms);
    function onAbort(this: AbortSignal) {
      done();
      reject(abortReason(this));
    }
    for (const s of signals) s.addEventListener('abort', onAbort, { once: true });
    const unwake = wake?.listen(() => {
      done();
      resolve();
    });
  });
}

/**
 * The ChatError an aborted signal stands for (CLOSED for the session's own
 * signal). A new instance each time: the reason object is shared by every
 * waiter, and fetch implementations rewrite the stack of what they reject with.
 */
export function abortReason(signal: AbortSignal): ChatError {
  const reason: unknown = signal.reason;
  if (reason instanceof ChatError) return new ChatError(reason.code, reason.message);
  return new ChatError(ErrorCode.ABORTED, 'The operation was aborted', { cause: reason });
}

/** A broadcast "try again now" (e.g. the socket reconnected, so the network is back). */
export interface WakeSignal {
  listen(listener: () => void): () => void;
  fire(): void;
}

export function createWakeSignal(): WakeSignal {
  const listeners = new Set<() => void>();
  return {
    listen(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    fire() {
      const current = [...listeners];
      listeners.clear();
      for (const listener of current) listener();
    },
  };
}
