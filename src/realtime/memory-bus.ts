import type { BusEvent, BusHandler, EventBus, Unsubscribe } from './bus.js';

/**
 * The in-process bus of the embedded default (one instance). Delivery is
 * asynchronous and in publish order, like Redis, so code that works on one
 * behaves the same on the other.
 */
export function createMemoryBus(): EventBus {
  const handlers = new Map<string, Set<BusHandler>>();
  return {
    async publish(names: string | readonly string[], event: BusEvent) {
      const targets: BusHandler[] = [];
      for (const channel of typeof names === 'string' ? [names] : names) {
        const set = handlers.get(channel);
        if (set) targets.push(...set);
      }
      if (targets.length === 0) return;
      queueMicrotask(() => {
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
    onResync() {
      // Nothing is ever lost in-process.
    },
    async healthy() {
      return true;
    },
    async close() {
      handlers.clear();
    },
  };
}
