import { holdHandler, releaseHandler, type Broker, type BusEvent, type BusHandler, type ChannelHandlers } from './broker.js';

/**
 * The in-process broker of the embedded default (one instance). Delivery is
 * asynchronous and in publish order, like Redis, so code that works on one
 * behaves the same on the other. It runs on the next turn of the event loop
 * (setImmediate, not a microtask), so the mutation that published answers
 * before the fan-out runs: the sender never waits for it.
 */
export function createMemoryBroker(): Broker {
  // Each channel's subscriptions, counted (broker.ts, ChannelHandlers).
  const handlers = new Map<string, ChannelHandlers>();
  return {
    async publish(names: string | readonly string[], event: BusEvent) {
      // Who is subscribed now, as Redis decides at publish time.
      const targets: BusHandler[] = [];
      for (const channel of typeof names === 'string' ? [names] : names) {
        const held = handlers.get(channel);
        if (typeof held === 'function') targets.push(held);
        else if (held) for (const handler of held.keys()) targets.push(handler);
      }
      if (targets.length === 0) return;
      setImmediate(() => {
        for (const handler of targets) handler(event);
      });
    },
    async subscribe(channel: string, handler: BusHandler): Promise<void> {
      handlers.set(channel, holdHandler(handlers.get(channel), handler));
    },
    async unsubscribe(channel: string, handler: BusHandler): Promise<void> {
      const held = releaseHandler(handlers.get(channel), handler);
      if (held) handlers.set(channel, held);
      else handlers.delete(channel);
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
