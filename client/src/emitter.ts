import type { Unsubscribe } from './types.js';

/**
 * Typed listeners for the session's outputs. A listener that throws must not
 * stop delivery to the others (or corrupt the sequencer that called emit):
 * its error goes to `onListenerError` instead.
 */
export interface Emitter<Events extends Record<string, unknown>> {
  on<K extends keyof Events>(event: K, listener: (payload: Events[K]) => void): Unsubscribe;
  emit<K extends keyof Events>(event: K, payload: Events[K]): void;
  /** Removes every listener. */
  clear(): void;
}

export function createEmitter<Events extends Record<string, unknown>>(onListenerError: (error: unknown) => void): Emitter<Events> {
  const listeners = new Map<keyof Events, Set<(payload: never) => void>>();
  return {
    on(event, listener) {
      let set = listeners.get(event);
      if (!set) listeners.set(event, (set = new Set()));
      // Wrapped so that adding the same function twice gives two subscriptions.
      const entry = (payload: never) => listener(payload);
      set.add(entry);
      return () => {
        set.delete(entry);
      };
    },
    emit(event, payload) {
      const set = listeners.get(event);
      if (!set) return;
      for (const listener of [...set]) {
        try {
          (listener as (value: unknown) => void)(payload);
        } catch (error) {
          onListenerError(error);
        }
      }
    },
    clear() {
      listeners.clear();
    },
  };
}

/**
 * An async iterator fed by a push source. Items queue up until the consumer
 * pulls them (a slow `for await` loop sees everything, in order); `return()`
 * (a `break`) unsubscribes; `end()` finishes it after the queue drains.
 */
export function createPushIterator<T>(subscribe: (push: (item: T) => void) => Unsubscribe, onEnd: (end: () => void) => Unsubscribe): AsyncIterableIterator<T> {
  const queue: T[] = [];
  let waiting: ((result: IteratorResult<T>) => void) | undefined;
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    unsubscribe();
    unlistenEnd();
    if (waiting) {
      const resolve = waiting;
      waiting = undefined;
      resolve({ value: undefined, done: true });
    }
  };
  const unsubscribe = subscribe((item) => {
    if (finished) return;
    if (waiting) {
      const resolve = waiting;
      waiting = undefined;
      resolve({ value: item, done: false });
    } else queue.push(item);
  });
  // Ending keeps what is queued: the consumer still gets it before `done`.
  const unlistenEnd = onEnd(() => {
    if (finished) return;
    finished = true;
    unsubscribe();
    if (waiting && queue.length === 0) {
      const resolve = waiting;
      waiting = undefined;
      resolve({ value: undefined, done: true });
    }
  });
  return {
    next() {
      if (queue.length > 0) return Promise.resolve({ value: queue.shift()!, done: false });
      if (finished) return Promise.resolve({ value: undefined, done: true });
      return new Promise((resolve) => (waiting = resolve));
    },
    return() {
      queue.length = 0;
      finish();
      return Promise.resolve({ value: undefined, done: true });
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}
