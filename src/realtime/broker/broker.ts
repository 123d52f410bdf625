import type { ConversationEventRecord, DepartureReason, MessageRecord, UserRecord } from '../../chat/records.js';

/**
 * Everything that crosses the broker between instances. Messages travel whole
 * (with the sender's name) so that no instance queries the database to
 * deliver them. See docs/architecture.md, "Broker".
 */
export type BusEvent =
  /**
   * A message was sent (it is also event SENT of the log; `threadRoot` is its
   * thread's root in its new state). `at`: when it was published (ms since
   * epoch), for the pub/sub lag metric.
   */
  | { type: 'message'; message: MessageRecord; threadRoot?: MessageRecord | null; at?: number }
  /** Any other event of a conversation's log. */
  | { type: 'event'; event: ConversationEventRecord }
  /** `userId` joined; they receive messages after `lastSeq` and events after `lastEventSeq`. */
  | { type: 'joined'; conversationId: string; userId: string; lastSeq: number; lastEventSeq: number; memberCount: number }
  | { type: 'left'; conversationId: string; userId: string; reason: DepartureReason; memberCount: number }
  /** The member count changed across the fan-out threshold: switch channel. */
  | { type: 'resized'; conversationId: string; memberCount: number }
  /** A user came online or went offline (a hint: listeners re-read presence, so order does not matter). */
  | { type: 'presence'; userId: string; online: boolean }
  /** Ephemeral: someone is typing (or stopped). `id` lets an instance drop the copies fan-out on write brings. */
  | { type: 'typing'; id: string; conversationId: string; user: UserRecord; typing: boolean; expiresAt: string };

export type BusHandler = (event: BusEvent) => void;

/**
 * Pub/sub between server instances. At most once, like Redis pub/sub: it may
 * lose anything, at any time. Nothing relies on it for correctness; the hub
 * repairs from the database (docs/architecture.md, "Delivery guarantees").
 */
export interface Broker {
  /** Publishes one event to one or many channels; it is serialized once. Rejects when it could not be handed to the broker. */
  publish(channels: string | readonly string[], event: BusEvent): Promise<void>;
  /**
   * Resolves once the subscription is active, so that every event published
   * after that point reaches `handler`: callers subscribe first, then read the
   * database, and nothing falls in between. While the broker is unreachable it
   * resolves at once (the subscription is made on reconnect, and `onReconnect`
   * listeners then re-read what they follow).
   */
  subscribe(channel: string, handler: BusHandler): Promise<void>;
  /**
   * Ends one `subscribe` of `handler` to `channel` (the channel itself once
   * none is left). No closure per subscription: the hub holds a broker
   * subscription for every user with a live subscription here, so this is
   * part of an idle connection's memory. Does nothing for a subscription not held.
   */
  unsubscribe(channel: string, handler: BusHandler): Promise<void>;
  /**
   * Called after the connection came back and every channel is subscribed
   * again: events published meanwhile are lost, so listeners resync.
   */
  onReconnect(listener: () => void): void;
  /** True while the broker can deliver (for /ready). */
  healthy(): boolean;
  close(): Promise<void>;
}

/**
 * A channel's subscriptions, for every broker: each handler with how many
 * `subscribe` calls hold it, so that a late `unsubscribe` cannot end a newer
 * subscription of the same handler. Most channels have one subscription (the
 * hub's), held as the handler alone; a Map only beyond that (idle memory).
 */
export type ChannelHandlers = BusHandler | Map<BusHandler, number>;

/** `held` with one more subscription of `handler`. */
export function holdHandler(held: ChannelHandlers | undefined, handler: BusHandler): ChannelHandlers {
  if (held === undefined) return handler;
  if (typeof held === 'function') return held === handler ? new Map([[held, 2]]) : new Map([[held, 1], [handler, 1]]);
  held.set(handler, (held.get(handler) ?? 0) + 1);
  return held;
}

/** `held` with one subscription of `handler` fewer: undefined when none is left, `held` unchanged when it held none. */
export function releaseHandler(held: ChannelHandlers | undefined, handler: BusHandler): ChannelHandlers | undefined {
  if (held === undefined || held === handler) return undefined;
  if (typeof held === 'function' || !held.has(handler)) return held;
  const count = held.get(handler)! - 1;
  if (count > 0) held.set(handler, count);
  else held.delete(handler);
  return held.size === 0 ? undefined : held;
}

/** Calls every handler once. */
export function dispatch(held: ChannelHandlers | undefined, event: BusEvent): void {
  if (typeof held === 'function') held(event);
  else if (held) for (const handler of held.keys()) handler(event);
}

/** Serializes an event once per publish (not per channel or per subscriber). */
export function encodeEvent(event: BusEvent): string {
  return JSON.stringify(event);
}

/** Parses an event once per process; message dates come back as Dates. */
export function decodeEvent(raw: string): BusEvent {
  const event = JSON.parse(raw) as BusEvent;
  if (event.type === 'message') {
    reviveMessage(event.message);
    if (event.threadRoot) reviveMessage(event.threadRoot);
  } else if (event.type === 'event' && event.event.kind === 'message') {
    reviveMessage(event.event.message);
    if (event.event.threadRoot) reviveMessage(event.event.threadRoot);
  }
  return event;
}

/** JSON has no dates: a message's come back as strings. */
function reviveMessage(message: MessageRecord): void {
  message.createdAt = new Date(message.createdAt as unknown as string);
  if (message.editedAt) message.editedAt = new Date(message.editedAt as unknown as string);
  if (message.deletedAt) message.deletedAt = new Date(message.deletedAt as unknown as string);
}

/** What the realtime layer reports for metrics; every method is cheap. */
export interface RealtimeObserver {
  delivered(count?: number): void;
  messageSent(): void;
  /** Seconds from a message being stored to this instance emitting it. */
  deliveryLatency(seconds: number): void;
  pubsubLag(seconds: number): void;
  /** A publish failed (the hub's position check repairs it). */
  publishFailed(): void;
  /** A feed learned from the database what the broker did not bring (count of events). */
  repaired(count: number): void;
  subscriptionStarted(field: string): void;
  subscriptionEnded(field: string): void;
  /** A connection fell more than MAX_SOCKET_BUFFER_BYTES behind and was cut off (WebSocket 1013, event stream ended). */
  slowConsumerCut(transport: 'ws' | 'sse'): void;
}

export const ignoreObserver: RealtimeObserver = {
  delivered() {},
  messageSent() {},
  deliveryLatency() {},
  pubsubLag() {},
  publishFailed() {},
  repaired() {},
  subscriptionStarted() {},
  subscriptionEnded() {},
  slowConsumerCut() {},
};
