import type { Broker, BusEvent } from '../broker/broker.js';
import { channels } from '../fanout.js';

type Listener = (userId: string) => void;

/**
 * Presence changes of particular users, heard once per process: one broker
 * subscription per watched user however many local subscriptions watch them.
 * Changes are hints; after a broker reconnect (hints may have been lost)
 * every watcher is asked to re-read the presence it shows.
 */
export class PresenceWatch {
  private readonly watchers = new Map<string, { listeners: Set<Listener>; subscribed: Promise<void> }>();
  private readonly resyncs = new Set<() => void>();

  constructor(
    private readonly broker: Broker,
    private readonly onError: (error: unknown, what: string) => void,
  ) {
    broker.onReconnect(() => {
      for (const resync of this.resyncs) resync();
    });
  }

  private readonly handler = (event: BusEvent) => {
    if (event.type !== 'presence') return;
    for (const listener of this.watchers.get(event.userId)?.listeners ?? []) listener(event.userId);
  };

  /** Resolves once every change after this point will be heard; returns the way to stop. */
  async watch(userIds: readonly string[], listener: Listener, resync: () => void): Promise<() => void> {
    const pending: Promise<void>[] = [];
    for (const userId of userIds) {
      let entry = this.watchers.get(userId);
      if (!entry) {
        entry = { listeners: new Set(), subscribed: this.broker.subscribe(channels.presence(userId), this.handler) };
        this.watchers.set(userId, entry);
      }
      entry.listeners.add(listener);
      pending.push(entry.subscribed);
    }
    this.resyncs.add(resync);
    const stop = () => {
      this.resyncs.delete(resync);
      for (const userId of userIds) {
        const entry = this.watchers.get(userId);
        if (!entry || !entry.listeners.delete(listener) || entry.listeners.size > 0) continue;
        this.watchers.delete(userId);
        const channel = channels.presence(userId);
        entry.subscribed.then(() => this.broker.unsubscribe(channel, this.handler)).catch((error) => this.onError(error, 'unwatch presence'));
      }
    };
    try {
      await Promise.all(pending);
    } catch (error) {
      stop();
      throw error;
    }
    return stop;
  }
}
