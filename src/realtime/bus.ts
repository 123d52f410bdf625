import type { DepartureReason, MessageRecord, UserRecord } from '../chat/records.js';

/**
 * Everything that crosses the event bus. Messages travel whole (with the
 * sender's name) so that no instance queries the database to deliver them.
 */
export type BusEvent =
  /** `at`: when it was published (ms since epoch), for the pub/sub lag metric. */
  | { type: 'message'; message: MessageRecord; at?: number }
  /** `userId` joined; they receive messages after `lastSeq`. */
  | { type: 'joined'; conversationId: string; userId: string; lastSeq: number; memberCount: number }
  | { type: 'left'; conversationId: string; userId: string; reason: DepartureReason; memberCount: number }
  /** The member count changed across the fan-out threshold: switch delivery path. */
  | { type: 'resized'; conversationId: string; memberCount: number }
  /** A user came online or went offline (a hint: listeners re-read presence, so order does not matter). */
  | { type: 'presence'; userId: string; online: boolean }
  /** Ephemeral: someone is typing (or stopped). `id` lets an instance drop the copies fan-out on write brings. */
  | { type: 'typing'; id: string; conversationId: string; user: UserRecord; typing: boolean; expiresAt: string };

export type BusHandler = (event: BusEvent) => void;

/** What the realtime layer reports for metrics; every method is cheap and optional to implement. */
export interface RealtimeObserver {
  delivered(count?: number): void;
  messageSent(): void;
  /** Seconds from a message being stored to this instance emitting it. */
  deliveryLatency(seconds: number): void;
  pubsubLag(seconds: number): void;
  subscriptionStarted(field: string): void;
  subscriptionEnded(field: string): void;
}

export const ignoreObserver: RealtimeObserver = {
  delivered() {},
  messageSent() {},
  deliveryLatency() {},
  pubsubLag() {},
  subscriptionStarted() {},
  subscriptionEnded() {},
};
export type Unsubscribe = () => Promise<void>;

/**
 * Pub/sub between server instances (DESIGN §5). At-most-once, like Redis:
 * consumers detect gaps by seq and fill them from the database.
 */
export interface EventBus {
  /** Publishes one event to one or many channels; it is serialized once. */
  publish(channels: string | readonly string[], event: BusEvent): Promise<void>;
  /**
   * Resolves once the subscription is active, i.e. every event published
   * after that point reaches `handler`. Callers rely on this ordering: they
   * subscribe first, then read the database, so nothing falls in between.
   */
  subscribe(channel: string, handler: BusHandler): Promise<Unsubscribe>;
  /** Registers a callback for "events may have been lost" (a reconnect); consumers resync from the database. */
  onResync(listener: () => void): void;
  /** True while the bus can deliver (for /ready). */
  healthy(): Promise<boolean>;
  close(): Promise<void>;
}

/** Channel names: one per user (fan-out on write) and one per conversation (fan-out on read). */
export const channels = {
  user: (userId: string) => `chat:user:${userId}`,
  conversation: (conversationId: string) => `chat:conversation:${conversationId}`,
  presence: (userId: string) => `chat:presence-changes:${userId}`,
};

/** Serializes an event once per publish (not per channel or per subscriber). */
export function encodeEvent(event: BusEvent): string {
  return JSON.stringify(event);
}

/** Parses an event once per process; message dates come back as Dates. */
export function decodeEvent(raw: string): BusEvent {
  const event = JSON.parse(raw) as BusEvent;
  if (event.type === 'message') event.message.createdAt = new Date(event.message.createdAt as unknown as string);
  return event;
}
