import DataLoader from 'dataloader';
import { GroupCommit } from '../db/group-commit.js';
import type { ConversationEventRecord, MessageRecord } from '../chat/records.js';
import { ignoreObserver, type Broker, type BusEvent, type RealtimeObserver } from './broker/broker.js';
import { channels, type FanoutPolicy } from './fanout.js';
import { ConversationFeed, type FeedStore } from './feed.js';

/** A live subscription of one user, told about that user's membership changes. */
export interface MembershipListener {
  onJoined(event: Extract<BusEvent, { type: 'joined' }>): void;
  onLeft(event: Extract<BusEvent, { type: 'left' }>): void;
  /** The user's conversations changed in ways the broker may not have told: re-read them from the database. */
  onResync(): void;
}

/** Receives typing events of one conversation. */
export interface TypingListener {
  onTyping(event: Extract<BusEvent, { type: 'typing' }>): void;
}

/** Where a conversation stands: its last message seq, its last event number, its size. */
export interface Position {
  lastSeq: number;
  lastEventSeq: number;
  memberCount: number;
}

/** The two streams a conversation has: its messages by seq, and its event log by event number. */
export type FeedKind = 'messages' | 'events';
type ItemOf<K extends FeedKind> = K extends 'messages' ? MessageRecord : ConversationEventRecord;

export interface HubStore {
  messages: FeedStore<MessageRecord>;
  events: FeedStore<ConversationEventRecord>;
  /** Where each conversation stands now (missing ones are omitted). */
  positions(conversationIds: readonly string[]): Promise<Map<string, Position>>;
  /** Each user's inbox version: bumped by every change to the set of conversations they are in. */
  inboxVersions(userIds: readonly string[]): Promise<Map<string, number>>;
  /**
   * A version of the user's read earlier (at authentication; each is handed
   * out once), never newer than the current one, or undefined: attaching
   * starts from it instead of reading one. If it is stale, the next check
   * resyncs the user once.
   */
  takeInboxVersion?(userId: string): number | undefined;
}

export interface HubOptions {
  broker: Broker;
  store: HubStore;
  policy: FanoutPolicy;
  /** How often the position check runs (ms): the delivery bound is about this plus one database read. */
  checkIntervalMs: number;
  /** Recent messages kept per large conversation for subscribers resuming just behind. */
  recentCapacity?: number;
  onError: (error: unknown, what: string) => void;
  observer?: RealtimeObserver;
}

/**
 * A user followed here: the subscriptions listening for its membership
 * events and its channel. Most users have one subscription on an instance,
 * so there is a Set only from the second on, and the promises of attaching
 * are dropped once settled: this object is part of every idle subscription's
 * memory (`npm run bench:memory`).
 */
class UserEntry {
  private only: MembershipListener | undefined;
  private more: Set<MembershipListener> | undefined;
  /** Settles once the user channel is live and the inbox version is known; undefined once it did. */
  ready: Promise<void> | undefined;
  /** The broker subscription to the user channel while it is being made; undefined once made. */
  subscribing: Promise<void> | undefined;
  /** The inbox version as of attaching (or the last check); undefined until read. */
  version: number | undefined;

  add(listener: MembershipListener): void {
    if (this.only === undefined && this.more === undefined) this.only = listener;
    else if (this.only !== listener) (this.more ??= new Set()).add(listener);
  }

  /** Whether it was there. */
  delete(listener: MembershipListener): boolean {
    if (this.only === listener) {
      this.only = undefined;
      return true;
    }
    return this.more?.delete(listener) ?? false;
  }

  get size(): number {
    return (this.only === undefined ? 0 : 1) + (this.more?.size ?? 0);
  }

  /** A copy: listeners may detach while they are told. */
  listeners(): MembershipListener[] {
    const all = this.only === undefined ? [] : [this.only];
    if (this.more) for (const listener of this.more) all.push(listener);
    return all;
  }
}

/** One conversation followed here: its feeds (either or both) and its channel. */
interface FeedEntry {
  conversationId: string;
  memberCount: number;
  messages?: ConversationFeed<MessageRecord>;
  events?: ConversationFeed<ConversationEventRecord>;
  /** The conversation channel, while the conversation is large. */
  channel?: Promise<void>;
}

/** The event a send is in the event log. */
function sentEvent(message: MessageRecord, threadRoot: MessageRecord | null): ConversationEventRecord {
  return {
    kind: 'message',
    conversationId: message.conversationId,
    eventSeq: message.eventSeq,
    action: 'SENT',
    message,
    threadRoot,
    reaction: null,
    actor: message.sender,
    catchUp: false,
  };
}

/** Ids per database read of the position check. */
const CHECK_BATCH = 1000;

/**
 * The local half of delivery (docs/architecture.md, "Hub"): which live
 * subscriptions of this process want which events, and every broker
 * subscription they need.
 *
 * - A user channel per user with a live subscription here (fan-out on write
 *   lands there) and a conversation channel per large conversation with a
 *   local subscriber (fan-out on read).
 * - Feeds per conversation with local subscribers: one orders its messages
 *   by seq, one its event log by event number (whichever local streams
 *   need); each fills gaps from the database.
 * - The position check: every `checkIntervalMs`, and at once after the broker
 *   reconnects, it reads where every followed conversation stands and each
 *   followed user's inbox version, and repairs what the broker lost. This is
 *   what bounds delivery whatever the broker drops.
 */
export class Hub {
  private readonly users = new Map<string, UserEntry>();
  private readonly feeds = new Map<string, FeedEntry>();
  private readonly typing = new Map<string, Set<TypingListener>>();
  /** Ids of recent typing events: fan-out on write brings one copy per local member. */
  private readonly recentTyping = new Set<string>();
  private readonly options: HubOptions;
  private readonly handler = (event: BusEvent) => this.route(event);
  private readonly observer: RealtimeObserver;
  private readonly onEmit: (message: MessageRecord) => void;
  private readonly keys = { messages: (m: MessageRecord) => m.seq, events: (e: ConversationEventRecord) => e.eventSeq };
  private readonly onRepair: (count: number) => void;
  /** Batches the inbox-version reads of users attaching at about the same time. */
  private readonly versions: DataLoader<string, number>;
  private readonly timer: NodeJS.Timeout;
  private checking: Promise<void> | undefined;
  /** How long the check lets in-flight publishes arrive before it repairs (a quarter of the period, at most 250 ms). */
  private readonly grace: number;
  private checkAgain = false;

  constructor(options: HubOptions) {
    this.options = options;
    this.observer = options.observer ?? ignoreObserver;
    this.onEmit = (message) => this.observer.deliveryLatency((Date.now() - message.createdAt.getTime()) / 1000);
    this.onRepair = (count) => this.observer.repaired(count);
    // Group commit: after a restart thousands of users' first subscriptions start at once.
    const commit = new GroupCommit();
    this.versions = new DataLoader(
      async (userIds: readonly string[]) => {
        const found = await commit.run(() => options.store.inboxVersions(userIds));
        return userIds.map((id) => found.get(id) ?? 0);
      },
      { cache: false, maxBatchSize: CHECK_BATCH, batchScheduleFn: commit.schedule },
    );
    options.broker.onReconnect(() => void this.check());
    this.grace = Math.min(250, Math.floor(options.checkIntervalMs / 4));
    this.timer = setInterval(() => void this.check(), options.checkIntervalMs);
    this.timer.unref();
  }

  /**
   * Registers a user's subscription for membership events and makes sure this
   * process hears the user's channel. Resolves once the channel is live and
   * the user's inbox version is known, so whatever the caller reads from the
   * database next cannot miss a change: it either arrives as an event or
   * moves the version, which the position check notices. The version may
   * predate the channel (one taken from authentication,
   * `HubStore.takeInboxVersion`): a change in between then moves it too,
   * and costs one resync that finds nothing missing.
   */
  async attachUser(userId: string, listener: MembershipListener): Promise<void> {
    let entry = this.users.get(userId);
    if (!entry) {
      const created = (entry = new UserEntry());
      const subscribing = this.options.broker.subscribe(channels.user(userId), this.handler).then(() => {
        created.subscribing = undefined;
      });
      created.subscribing = subscribing;
      const known = this.options.store.takeInboxVersion?.(userId);
      const ready = Promise.all([subscribing, known ?? this.versions.load(userId)]).then(([, version]) => {
        created.version ??= version;
        created.ready = undefined;
      });
      created.ready = ready;
      ready.catch(() => {
        // Neither half is usable: forget the entry, so the next attach starts afresh.
        if (this.users.get(userId) !== created) return;
        this.users.delete(userId);
        this.unsubscribeUser(userId, created).catch(() => {});
      });
      this.users.set(userId, created);
    }
    entry.add(listener);
    if (entry.ready) await entry.ready;
  }

  detachUser(userId: string, listener: MembershipListener): void {
    const entry = this.users.get(userId);
    if (!entry || !entry.delete(listener) || entry.size > 0) return;
    this.users.delete(userId);
    this.unsubscribeUser(userId, entry).catch((error) => this.options.onError(error, 'unsubscribe user'));
  }

  private async unsubscribeUser(userId: string, entry: UserEntry): Promise<void> {
    if (entry.subscribing) await entry.subscribing;
    await this.options.broker.unsubscribe(channels.user(userId), this.handler);
  }

  /**
   * Returns the feeds of this kind of these conversations, creating the
   * missing ones. A new feed starts receiving items first (buffering them),
   * then subscribes the conversation channel if the conversation is large,
   * then reads where the conversation stands, so nothing can fall between
   * "heard" and "read". One query for all new feeds, however many. Each
   * returned feed is held until `release`.
   */
  async acquire<K extends FeedKind>(kind: K, conversations: readonly { id: string; memberCount: number }[]): Promise<ConversationFeed<ItemOf<K>>[]> {
    const created: ConversationFeed<ItemOf<K>>[] = [];
    const result = conversations.map(({ id, memberCount }) => {
      let entry = this.feeds.get(id);
      if (!entry) {
        entry = { conversationId: id, memberCount };
        this.feeds.set(id, entry);
        if (this.options.policy.isLarge(memberCount)) this.subscribeConversation(entry);
      } else if (memberCount !== entry.memberCount) {
        // The caller read the member count just now: if a `resized` event was
        // lost, this is where the hub learns the conversation grew.
        this.resized(id, memberCount);
      }
      let feed = entry[kind] as ConversationFeed<ItemOf<K>> | undefined;
      if (!feed) {
        feed = new ConversationFeed<ItemOf<K>>({
          conversationId: id,
          keyOf: this.keys[kind] as (item: ItemOf<K>) => number,
          store: this.options.store[kind] as FeedStore<ItemOf<K>>,
          recentCapacity: this.options.policy.isLarge(memberCount) ? (this.options.recentCapacity ?? 256) : 0,
          onError: this.options.onError,
          onEmit: kind === 'messages' ? (this.onEmit as (item: ItemOf<K>) => void) : undefined,
          onRepair: this.onRepair,
        });
        (entry as unknown as Record<FeedKind, unknown>)[kind] = feed;
        created.push(feed);
      }
      feed.refs++;
      return feed;
    });
    if (created.length > 0) {
      try {
        await Promise.all(created.map((feed) => this.feeds.get(feed.conversationId)?.channel));
        const positions = await this.options.store.positions(created.map((feed) => feed.conversationId));
        for (const feed of created) {
          const position = positions.get(feed.conversationId);
          feed.initialize(position ? (kind === 'messages' ? position.lastSeq : position.lastEventSeq) : 0);
        }
      } catch (error) {
        // Feeds created here never got a starting point: take them out, and
        // fail any other subscriber already waiting on them (it resubscribes).
        for (const feed of created) {
          feed.fail(error);
          feed.refs = 0;
          this.forget(kind, feed);
        }
        for (const feed of result) if (!created.includes(feed)) this.release(kind, feed);
        throw error;
      }
    }
    return result;
  }

  /** Lets go of a feed from `acquire`; the last holder out drops it, and the channel with the conversation's last feed. */
  release<K extends FeedKind>(kind: K, feed: ConversationFeed<ItemOf<K>>): void {
    if (--feed.refs > 0) return;
    this.forget(kind, feed);
  }

  private forget(kind: FeedKind, feed: { conversationId: string }): void {
    const entry = this.feeds.get(feed.conversationId);
    if (!entry || (entry[kind] as unknown) !== feed) return;
    entry[kind] = undefined;
    if (entry.messages || entry.events) return;
    this.feeds.delete(entry.conversationId);
    entry.channel
      ?.then(() => this.options.broker.unsubscribe(channels.conversation(entry.conversationId), this.handler))
      .catch((error) => this.options.onError(error, 'unsubscribe conversation'));
  }

  /** Typing events of a conversation go to `listener` (hold the conversation's feed to hear them). */
  watchTyping(conversationId: string, listener: TypingListener): () => void {
    let set = this.typing.get(conversationId);
    if (!set) this.typing.set(conversationId, (set = new Set()));
    set.add(listener);
    return () => {
      set!.delete(listener);
      if (set!.size === 0 && this.typing.get(conversationId) === set) this.typing.delete(conversationId);
    };
  }

  /**
   * The position check: reads where every followed conversation stands and
   * every followed user's inbox version, and repairs what was missed: feeds
   * fill from the database, listeners of users whose conversations changed
   * re-read them. Runs on a timer and after a broker reconnect; concurrent
   * calls share one run (plus one more, if asked for during it).
   */
  check(): Promise<void> {
    if (this.checking) {
      this.checkAgain = true;
      return this.checking;
    }
    this.checking = (async () => {
      do {
        this.checkAgain = false;
        await this.checkOnce().catch((error) => this.options.onError(error, 'position check'));
      } while (this.checkAgain);
    })().finally(() => {
      this.checking = undefined;
    });
    return this.checking;
  }

  private async checkOnce(): Promise<void> {
    const feeds = [...this.feeds.values()];
    const read: [FeedEntry, Position][] = [];
    for (let i = 0; i < feeds.length; i += CHECK_BATCH) {
      const batch = feeds.slice(i, i + CHECK_BATCH);
      const positions = await this.options.store.positions(batch.map((entry) => entry.conversationId));
      for (const entry of batch) {
        const position = positions.get(entry.conversationId);
        if (position) read.push([entry, position]);
      }
    }
    // What committed just now is usually still on its way through the broker:
    // give it a moment, so that the check repairs what was lost, not what is
    // merely in flight (a repair arrives compacted, without who did it).
    if (read.length > 0) await new Promise((resolve) => setTimeout(resolve, this.grace));
    for (const [entry, position] of read) {
      if (position.memberCount !== entry.memberCount) this.resized(entry.conversationId, position.memberCount);
      entry.messages?.catchUpTo(position.lastSeq);
      entry.events?.catchUpTo(position.lastEventSeq);
    }
    const users = [...this.users].filter(([, entry]) => entry.version !== undefined);
    for (let i = 0; i < users.length; i += CHECK_BATCH) {
      const batch = users.slice(i, i + CHECK_BATCH);
      const versions = await this.options.store.inboxVersions(batch.map(([userId]) => userId));
      for (const [userId, entry] of batch) {
        const version = versions.get(userId) ?? 0;
        if (version === entry.version) continue;
        entry.version = version;
        for (const listener of entry.listeners()) listener.onResync();
      }
    }
  }

  private subscribeConversation(entry: FeedEntry): Promise<void> {
    entry.channel ??= this.options.broker.subscribe(channels.conversation(entry.conversationId), this.handler);
    return entry.channel;
  }

  /** The member count moved; a conversation that became large is now published on its own channel. */
  private resized(conversationId: string, memberCount: number): void {
    const entry = this.feeds.get(conversationId);
    if (!entry) return;
    entry.memberCount = memberCount;
    if (this.options.policy.isLarge(memberCount) && !entry.channel) {
      // Sends may already be going to the channel: subscribe, then read what was missed.
      this.subscribeConversation(entry)
        .then(() => this.options.store.positions([conversationId]))
        .then((positions) => {
          const position = positions.get(conversationId);
          if (!position) return;
          entry.messages?.catchUpTo(position.lastSeq);
          entry.events?.catchUpTo(position.lastEventSeq);
        })
        .catch((error) => this.options.onError(error, 'subscribe conversation'));
    }
  }

  private route(event: BusEvent): void {
    switch (event.type) {
      case 'message': {
        if (event.at !== undefined) this.observer.pubsubLag((Date.now() - event.at) / 1000);
        // No entry means no local subscriber wants this conversation (a user
        // channel carries every conversation of its user).
        const entry = this.feeds.get(event.message.conversationId);
        entry?.messages?.push(event.message);
        entry?.events?.push(sentEvent(event.message, event.threadRoot ?? null));
        return;
      }
      case 'event':
        this.feeds.get(event.event.conversationId)?.events?.push(event.event);
        return;
      case 'joined':
        this.resized(event.conversationId, event.memberCount);
        for (const listener of this.users.get(event.userId)?.listeners() ?? []) listener.onJoined(event);
        return;
      case 'left':
        this.resized(event.conversationId, event.memberCount);
        for (const listener of this.users.get(event.userId)?.listeners() ?? []) listener.onLeft(event);
        return;
      case 'resized':
        this.resized(event.conversationId, event.memberCount);
        return;
      case 'typing': {
        if (this.recentTyping.has(event.id)) return;
        this.recentTyping.add(event.id);
        if (this.recentTyping.size > 1024) this.recentTyping.delete(this.recentTyping.values().next().value!);
        for (const listener of this.typing.get(event.conversationId) ?? []) listener.onTyping(event);
        return;
      }
      case 'presence':
        return; // heard on presence channels (PresenceWatch)
    }
  }

  /** Subscription starts under way on this process (attached, start point not yet read): see {@link starting}. */
  private starts = 0;

  /** Runs a stream's start, counted while under way, so that tests can tell when a subscription has its start point. */
  async starting<T>(start: () => Promise<T>): Promise<T> {
    this.starts++;
    try {
      return await start();
    } finally {
      this.starts--;
    }
  }

  /**
   * For tests: whether this process hears the user's channel and no
   * subscription start is under way, so that a subscription of the user's
   * made before has read its start point (what is committed from now on
   * reaches it, whatever the timing).
   */
  async listening(userId: string): Promise<boolean> {
    const entry = this.users.get(userId);
    if (!entry) return false;
    await entry.ready;
    return this.starts === 0;
  }

  /** For tests: the inbox version this process holds for a user (undefined: not attached, or not known yet). */
  inboxVersion(userId: string): number | undefined {
    return this.users.get(userId)?.version;
  }

  /** For tests: how many live typing subscriptions this process has for a conversation. */
  typingWatchers(conversationId: string): number {
    return this.typing.get(conversationId)?.size ?? 0;
  }

  /** For tests and metrics: channels held and subscriptions receiving live. */
  stats(): { users: number; feeds: number; live: number } {
    let live = 0;
    for (const entry of this.feeds.values()) live += (entry.messages?.liveCount ?? 0) + (entry.events?.liveCount ?? 0);
    return { users: this.users.size, feeds: this.feeds.size, live };
  }

  close(): void {
    clearInterval(this.timer);
  }
}
