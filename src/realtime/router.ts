import type { MessageRecord } from '../chat/records.js';
import { channels, ignoreObserver, type BusEvent, type EventBus, type RealtimeObserver, type Unsubscribe } from './bus.js';
import { ConversationFeed, type FeedStore } from './feed.js';

/** A live subscription of one user, told about that user's membership changes. */
export interface MembershipListener {
  onJoined(event: Extract<BusEvent, { type: 'joined' }>): void;
  onLeft(event: Extract<BusEvent, { type: 'left' }>): void;
  /** Events may have been lost (bus reconnect): re-read what matters from the database. */
  onResync(): void;
}

export interface RouterStore extends FeedStore {
  /** Current last seq of each conversation (missing ones are omitted). */
  lastSeqs(conversationIds: readonly string[]): Promise<Map<string, number>>;
}

export interface RouterOptions {
  bus: EventBus;
  store: RouterStore;
  fanoutDirectMax: number;
  /** Recent messages kept per large conversation for subscribers resuming just behind. */
  recentCapacity?: number;
  onError: (error: unknown, what: string) => void;
  observer?: RealtimeObserver;
}

/** Receives typing events of one conversation. */
export interface TypingListener {
  onTyping(event: Extract<BusEvent, { type: 'typing' }>): void;
}

interface UserEntry {
  listeners: Set<MembershipListener>;
  subscribed: Promise<Unsubscribe>;
}

interface FeedEntry {
  feed: ConversationFeed;
  /** The conversation channel, while the conversation is large. */
  channel?: Promise<Unsubscribe>;
}

/**
 * Routes bus events to the subscriptions of this process (DESIGN §5).
 *
 * It owns every bus subscription: a user channel per locally connected user
 * with a live subscription (fan-out on write lands there) and a conversation
 * channel per large conversation with a local member (fan-out on read). Each
 * event is handled once per process: a message goes to its conversation's
 * feed, which orders it and hands it to the sockets that need it; a
 * membership change goes to that user's subscriptions.
 */
export class Router {
  private readonly users = new Map<string, UserEntry>();
  private readonly feeds = new Map<string, FeedEntry>();
  private readonly typing = new Map<string, Set<TypingListener>>();
  /** Ids of recent typing events: fan-out on write brings one copy per local member. */
  private readonly recentTyping = new Set<string>();
  private readonly options: RouterOptions;
  private readonly handler = (event: BusEvent) => this.route(event);
  private readonly observer: RealtimeObserver;
  private readonly onEmit: (message: MessageRecord) => void;

  constructor(options: RouterOptions) {
    this.options = options;
    this.observer = options.observer ?? ignoreObserver;
    this.onEmit = (message) => this.observer.deliveryLatency((Date.now() - message.createdAt.getTime()) / 1000);
    options.bus.onResync(() => this.resync());
  }

  /**
   * Registers a user's subscription for membership events and makes sure this
   * process hears the user's channel. Resolves once the channel is live, so
   * that whatever the caller reads from the database next cannot miss an event.
   */
  async attachUser(userId: string, listener: MembershipListener): Promise<void> {
    let entry = this.users.get(userId);
    if (!entry) {
      entry = { listeners: new Set(), subscribed: this.options.bus.subscribe(channels.user(userId), this.handler) };
      this.users.set(userId, entry);
      entry.subscribed.catch(() => {
        if (this.users.get(userId) === entry) this.users.delete(userId);
      });
    }
    entry.listeners.add(listener);
    await entry.subscribed;
  }

  detachUser(userId: string, listener: MembershipListener): void {
    const entry = this.users.get(userId);
    if (!entry || !entry.listeners.delete(listener) || entry.listeners.size > 0) return;
    this.users.delete(userId);
    entry.subscribed.then((unsubscribe) => unsubscribe()).catch((error) => this.options.onError(error, 'unsubscribe user'));
  }

  /**
   * Returns the feeds of these conversations, creating the missing ones. A new
   * feed starts receiving events first (buffering them), then subscribes the
   * conversation channel if the conversation is large, then reads its last
   * seq, so no message can fall between "heard" and "read". One query for all
   * new feeds, however many. Each returned feed is held until `release`.
   */
  async acquire(conversations: readonly { id: string; memberCount: number }[]): Promise<ConversationFeed[]> {
    const created: FeedEntry[] = [];
    const result = conversations.map(({ id, memberCount }) => {
      let entry = this.feeds.get(id);
      if (!entry) {
        const feed = new ConversationFeed({
          conversationId: id,
          store: this.options.store,
          recentCapacity: memberCount > this.options.fanoutDirectMax ? (this.options.recentCapacity ?? 256) : 0,
          onError: this.options.onError,
          onEmit: this.onEmit,
        });
        feed.memberCount = memberCount;
        entry = { feed };
        this.feeds.set(id, entry);
        created.push(entry);
        if (memberCount > this.options.fanoutDirectMax) this.subscribeConversation(entry);
      } else if (memberCount !== entry.feed.memberCount) {
        // The caller read the member count just now: if a `resized` event was
        // lost, this is where the feed learns the conversation grew.
        this.resized(id, memberCount);
      }
      entry.feed.refs++;
      return entry.feed;
    });
    if (created.length > 0) {
      try {
        await Promise.all(created.map((entry) => entry.channel));
        const seqs = await this.options.store.lastSeqs(created.map((entry) => entry.feed.conversationId));
        for (const entry of created) entry.feed.initialize(seqs.get(entry.feed.conversationId) ?? 0);
      } catch (error) {
        // Feeds created here never got a starting point: take them out, and
        // fail any other subscriber already waiting on them (it resubscribes).
        for (const entry of created) {
          entry.feed.fail(error);
          this.drop(entry);
        }
        for (const feed of result) if (!created.some((entry) => entry.feed === feed)) this.release(feed);
        throw error;
      }
    }
    return result;
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

  /** Lets go of a feed from `acquire`; the last holder out unsubscribes. */
  release(feed: ConversationFeed): void {
    if (--feed.refs > 0) return;
    const entry = this.feeds.get(feed.conversationId);
    if (entry && entry.feed === feed) this.drop(entry);
  }

  private drop(entry: FeedEntry): void {
    if (this.feeds.get(entry.feed.conversationId) === entry) this.feeds.delete(entry.feed.conversationId);
    entry.channel
      ?.then((unsubscribe) => unsubscribe())
      .catch((error) => this.options.onError(error, 'unsubscribe conversation'));
  }

  private subscribeConversation(entry: FeedEntry): Promise<Unsubscribe> {
    entry.channel ??= this.options.bus.subscribe(channels.conversation(entry.feed.conversationId), this.handler);
    return entry.channel;
  }

  /** The member count moved; a conversation that became large is now published on its own channel. */
  private resized(conversationId: string, memberCount: number): void {
    const entry = this.feeds.get(conversationId);
    if (!entry) return;
    entry.feed.memberCount = memberCount;
    if (memberCount > this.options.fanoutDirectMax && !entry.channel) {
      // Sends may already be going to the channel: subscribe, then read what was missed.
      this.subscribeConversation(entry)
        .then(() => this.catchUp([entry]))
        .catch((error) => this.options.onError(error, 'subscribe conversation'));
    }
  }

  private async catchUp(entries: FeedEntry[]): Promise<void> {
    if (entries.length === 0) return;
    const seqs = await this.options.store.lastSeqs(entries.map((entry) => entry.feed.conversationId));
    for (const entry of entries) {
      const seq = seqs.get(entry.feed.conversationId);
      if (seq !== undefined) entry.feed.catchUpTo(seq);
    }
  }

  /** After a bus reconnect: every feed reads its conversation's last seq and fills what it missed. */
  resync(): void {
    this.catchUp([...this.feeds.values()]).catch((error) => this.options.onError(error, 'resync'));
    for (const entry of this.users.values()) for (const listener of entry.listeners) listener.onResync();
  }

  private route(event: BusEvent): void {
    switch (event.type) {
      case 'message':
        if (event.at !== undefined) this.observer.pubsubLag((Date.now() - event.at) / 1000);
        this.routeMessage(event.message);
        return;
      case 'joined':
        this.resized(event.conversationId, event.memberCount);
        for (const listener of this.users.get(event.userId)?.listeners ?? []) listener.onJoined(event);
        return;
      case 'left':
        this.resized(event.conversationId, event.memberCount);
        for (const listener of this.users.get(event.userId)?.listeners ?? []) listener.onLeft(event);
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

  private routeMessage(message: MessageRecord): void {
    // No feed means no local subscriber wants this conversation (a user
    // channel can carry conversations nobody here subscribed to).
    this.feeds.get(message.conversationId)?.feed.push(message);
  }

  /** Whether this process currently hears the user's channel (for tests). */
  async listening(userId: string): Promise<boolean> {
    const entry = this.users.get(userId);
    if (!entry) return false;
    await entry.subscribed;
    return true;
  }

  /** For tests and metrics: channels held and subscriptions receiving live. */
  stats(): { users: number; feeds: number; live: number } {
    let live = 0;
    for (const entry of this.feeds.values()) live += entry.feed.liveCount;
    return { users: this.users.size, feeds: this.feeds.size, live };
  }
}
