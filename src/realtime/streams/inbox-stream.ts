import type { StreamStart } from '../../chat/streams.js';
import type { Context } from '../../context.js';
import { badInput } from '../../errors.js';
import type { BusEvent } from '../broker/broker.js';
import type { ConversationFeed, FeedMember } from '../feed.js';
import type { FeedKind } from '../hub.js';
import { LiveStream } from './live-stream.js';

/** Root values of the inbox subscription besides messages. */
export interface ConversationJoinedEvent {
  kind: 'ConversationJoined';
  conversationId: string;
  /** Exactly where this subscription starts the conversation: messages with greater seqs follow. */
  afterSeq: number;
  /** The same in the event log: events with greater numbers follow. */
  afterEventSeq: number;
}
export interface ConversationLeftEvent {
  kind: 'ConversationLeft';
  conversationId: string;
  reason: 'LEFT' | 'REMOVED';
}

type Attached = { feed: ConversationFeed<unknown>; member: FeedMember<unknown> };

/**
 * Every conversation of the viewer on one subscription, including
 * conversations joined after it started, from per-conversation cursors:
 * `inbox` follows their messages (cursors are message seqs), `events` their
 * event logs (cursors are event numbers). Membership changes are events of
 * their own (ConversationJoined / ConversationLeft), applied one at a time in
 * arrival order, each before anything that follows it.
 */
export class InboxStream extends LiveStream {
  private readonly attached = new Map<string, Attached>();
  /** Feed members waiting for `activate` (attached while starting). */
  private waiting: Attached[] | undefined = [];
  /** Membership changes are applied one at a time, in arrival order. */
  private changes: Promise<void> = Promise.resolve();
  private loadInbox: (() => Promise<StreamStart[]>) | undefined;
  private readonly kind: FeedKind;

  constructor(context: Context, field: 'inbox' | 'events') {
    super(context, field);
    this.kind = field === 'inbox' ? 'messages' : 'events';
  }

  /** Where a conversation stands in this stream's sequence. */
  private positionOf(entry: { lastSeq: number; lastEventSeq: number }): number {
    return this.kind === 'messages' ? entry.lastSeq : entry.lastEventSeq;
  }

  /**
   * `announce`: send ConversationJoined (with its exact starting seq) for
   * every conversation the client gave no cursor for, so a client learns of
   * conversations it did not know about when it subscribed.
   */
  start(loadInbox: () => Promise<StreamStart[]>, cursors: Map<string, number>, announce = false): Promise<this> {
    return this.deps.hub.starting(() => this.begin(loadInbox, cursors, announce));
  }

  private async begin(loadInbox: () => Promise<StreamStart[]>, cursors: Map<string, number>, announce: boolean): Promise<this> {
    this.loadInbox = loadInbox;
    try {
      // Channel first, then the database: a change after the read arrives as an event.
      await this.deps.hub.attachUser(this.viewer.id, this);
      // The first load is the first step of the chain that applies membership
      // events, so a `left` that arrives meanwhile is applied after it (and
      // detaches what it just attached) rather than before it.
      const first = this.changes.then(async () => {
        const inbox = await loadInbox();
        if (this.kind === 'events') {
          // A cursor beyond a conversation's log would make the stream skip
          // events the client never had (a restored database, a client bug): refuse it.
          for (const entry of inbox) {
            const cursor = cursors.get(entry.conversationId);
            if (cursor !== undefined && cursor > entry.lastEventSeq) {
              throw badInput(`afterEventSeq ${cursor} is beyond the last event (${entry.lastEventSeq}) of conversation ${entry.conversationId}`, 'cursors');
            }
          }
        }
        if (announce) {
          for (const entry of inbox) {
            if (!cursors.has(entry.conversationId)) await this.announceJoined(entry);
          }
        }
        await this.attachFeeds(inbox, (entry) => Math.min(cursors.get(entry.conversationId) ?? this.positionOf(entry), this.positionOf(entry)));
      });
      this.changes = first.catch(() => {});
      await first;
    } catch (error) {
      void this.return();
      throw error;
    }
    return this;
  }

  protected activate(): void {
    const waiting = this.waiting ?? [];
    this.waiting = undefined;
    for (const { feed, member } of waiting) if (!member.detached) this.follow(feed, member);
  }

  private async attachFeeds(entries: StreamStart[], cursorOf: (entry: StreamStart) => number): Promise<void> {
    const fresh = entries.filter((entry) => !this.attached.has(entry.conversationId));
    if (fresh.length === 0 || this.closed) return;
    const feeds = (await this.deps.hub.acquire(this.kind, fresh.map((e) => ({ id: e.conversationId, memberCount: e.memberCount })))) as ConversationFeed<unknown>[];
    fresh.forEach((entry, index) => {
      const feed = feeds[index]!;
      if (this.closed || this.attached.has(entry.conversationId)) {
        this.deps.hub.release(this.kind, feed as never);
        return;
      }
      const member: FeedMember<unknown> = { cursor: cursorOf(entry), sink: this };
      this.attached.set(entry.conversationId, { feed, member });
      if (this.waiting) this.waiting.push({ feed, member });
      else this.follow(feed, member);
    });
  }

  private detach(conversationId: string): boolean {
    const entry = this.attached.get(conversationId);
    if (!entry) return false;
    this.attached.delete(conversationId);
    entry.feed.leave(entry.member);
    this.deps.hub.release(this.kind, entry.feed as never);
    return true;
  }

  private announceJoined(entry: { conversationId: string; lastSeq: number; lastEventSeq: number }): void | Promise<void> {
    return this.emit({
      kind: 'ConversationJoined',
      conversationId: entry.conversationId,
      afterSeq: entry.lastSeq,
      afterEventSeq: entry.lastEventSeq,
    } satisfies ConversationJoinedEvent);
  }

  private serially(work: () => Promise<void>): void {
    this.changes = this.changes.then(work).catch((error) => this.deps.onError(error, 'membership change'));
  }

  override onJoined(event: Extract<BusEvent, { type: 'joined' }>): void {
    this.serially(async () => {
      if (this.closed || this.attached.has(event.conversationId)) return;
      // Tell the client first, so the conversation exists for it before its first message.
      const entry = { conversationId: event.conversationId, memberCount: event.memberCount, lastSeq: event.lastSeq, lastEventSeq: event.lastEventSeq };
      await this.announceJoined(entry);
      await this.attachFeeds([entry], () => this.positionOf(entry));
    });
  }

  override onLeft(event: Extract<BusEvent, { type: 'left' }>): void {
    this.serially(async () => {
      if (this.closed || !this.detach(event.conversationId)) return;
      await this.emit({ kind: 'ConversationLeft', conversationId: event.conversationId, reason: event.reason } satisfies ConversationLeftEvent);
    });
  }

  /** The viewer's conversations changed and events may have been lost: compare with the database and apply the difference. */
  override onResync(): void {
    this.serially(async () => {
      if (this.closed || !this.loadInbox) return;
      const inbox = await this.loadInbox();
      const current = new Set(inbox.map((entry) => entry.conversationId));
      for (const conversationId of [...this.attached.keys()]) {
        if (!current.has(conversationId) && this.detach(conversationId)) {
          await this.emit({ kind: 'ConversationLeft', conversationId, reason: 'REMOVED' } satisfies ConversationLeftEvent);
        }
      }
      const joined = inbox.filter((entry) => !this.attached.has(entry.conversationId));
      for (const entry of joined) await this.announceJoined(entry);
      await this.attachFeeds(joined, (entry) => this.positionOf(entry));
    });
  }

  protected teardown(): void {
    for (const conversationId of [...this.attached.keys()]) this.detach(conversationId);
    this.deps.hub.detachUser(this.viewer.id, this);
  }
}
