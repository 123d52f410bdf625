import type { Broker, BusEvent, BusHandler, Unsubscribe } from './broker.js';

/**
 * The in-process broker of the embedded default (one instance). Delivery is
 * asynchronous and in publish order, like Redis, so code that works on one
 * behaves the same on the other. It runs on the next turn of the event loop
 * (setImmediate, not a microtask), so the mutation that published answers
 * before the fan-out runs: the sender never waits for it.
 */
export function createMemoryBroker(): Broker {
  const handlers = new Map<string, Set<BusHandler>>();
  return {
    async publish(names: string | readonly string[], event: BusEvent) {
      const targets: BusHandler[] = [];
      for (const channel of typeof names === 'string' ? [names] : names) {
        const set = handlers.get(channel);
        if (set) for (const handler of set) targets.push(handler);
      }
      if (targets.length === 0) return;
      setImmediate(() => {
        for (const handler of targets) handler(event);
      });
    },
    async subscribe(channel: string, handler: BusHandler): Promise<Unsubscribe> {
      let set = handlers.get(channel);
      if (!set) handlers.set(channel, (set = new Set()));
      set.add(handler);
      return async () => {
        set!.delete(handler);
        if (set!.size === 0 && handlers.get(channel) === set) handlers.delete(channel);
      };
    },
    onReconnect() {
      // Never disconnected.
    },
    healthy() {
      return true;
    },
    async close() {
      handlers.clear();
    },
  };
}
