import { channels, type BusEvent, type EventBus, type Unsubscribe } from './bus.js';

type Listener = (userId: string) => void;

/**
 * Presence changes of particular users, heard once per process: one bus
 * subscription per watched user however many local subscriptions watch them.
 */
export class PresenceWatch {
  private readonly watchers = new Map<string, { listeners: Set<Listener>; subscribed: Promise<Unsubscribe> }>();

  constructor(
    private readonly bus: EventBus,
    private readonly onError: (error: unknown, what: string) => void,
  ) {}

  private readonly handler = (event: BusEvent) => {
    if (event.type !== 'presence') return;
    for (const listener of this.watchers.get(event.userId)?.listeners ?? []) listener(event.userId);
  };

  /** Resolves once every change after this point will be heard; returns the way to stop. */
  async watch(userIds: readonly string[], listener: Listener): Promise<() => void> {
    const pending: Promise<Unsubscribe>[] = [];
    for (const userId of userIds) {
      let entry = this.watchers.get(userId);
      if (!entry) {
        entry = { listeners: new Set(), subscribed: this.bus.subscribe(channels.presence(userId), this.handler) };
        this.watchers.set(userId, entry);
      }
      entry.listeners.add(listener);
      pending.push(entry.subscribed);
    }
    const stop = () => {
      for (const userId of userIds) {
        const entry = this.watchers.get(userId);
        if (!entry || !entry.listeners.delete(listener) || entry.listeners.size > 0) continue;
        this.watchers.delete(userId);
        entry.subscribed.then((unsubscribe) => unsubscribe()).catch((error) => this.onError(error, 'unwatch presence'));
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
