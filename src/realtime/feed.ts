import type { MessageRecord } from '../chat/records.js';

/** What a feed needs from storage: the database is the source of truth for seqs. */
export interface FeedStore {
  /** Messages with afterSeq < seq < beforeSeq, ascending, at most `limit`. */
  range(conversationId: string, afterSeq: number, limit: number, beforeSeq?: number): Promise<MessageRecord[]>;
}

/**
 * Where a feed sends messages: one subscription's connection. Subscribers
 * with the same `shareKey` receive byte-identical payloads, so the feed
 * renders (executes and serializes) each message once per key, not once per
 * subscriber.
 */
export interface FeedSink {
  /** null: this sink renders for itself (it receives the bare message). */
  readonly shareKey: string | null;
  /** Executes and serializes the subscription's selection for a message. Same result for every sink of a key. */
  render(message: MessageRecord): string | Promise<string>;
  /** Hands over a message in seq order; `payload` is the rendered JSON when shareKey is set. */
  deliver(message: MessageRecord, payload: string | undefined): void;
  readonly closed: boolean;
}

/** One subscription's place in a feed: the last seq it has been given. */
export interface FeedMember {
  cursor: number;
  readonly sink: FeedSink;
  /** Set by `leave`: stops a catch-up in progress from joining the live set. */
  detached?: boolean;
}

interface Group {
  render: (message: MessageRecord) => string | Promise<string>;
  members: Set<FeedMember>;
  /** Recently rendered payloads by seq, so catch-ups and live delivery share the work. */
  rendered: Map<number, string | Promise<string>>;
}

const RENDER_CACHE = 32;
const RENDER_FAILED = JSON.stringify({ errors: [{ message: 'Unexpected error.', extensions: { code: 'INTERNAL_SERVER_ERROR' } }] });
const PAGE = 200;

export interface FeedOptions {
  conversationId: string;
  store: FeedStore;
  /** Keep this many recent messages for subscribers that resume just behind (large conversations). */
  recentCapacity: number;
  onError: (error: unknown, what: string) => void;
  /** Called once per message this feed emits (for the delivery latency metric). */
  onEmit?: (message: MessageRecord) => void;
  /** Called with the number of messages a fill read from the database (what the broker did not bring). */
  onRepair?: (count: number) => void;
}

/**
 * The ordered, gapless stream of one conversation within this process
 * (docs/architecture.md, "Feed"). Events arrive from the bus at most once and possibly out of
 * order (two senders publish in either order); the feed emits every seq
 * exactly once and in order, filling any gap from the database before it
 * goes on. It then hands each message to its live members, rendering once
 * per share key.
 *
 * Sequencing happens here once per process, not per subscriber: a gap costs
 * one database read, however many sockets are waiting behind it.
 */
export class ConversationFeed {
  readonly conversationId: string;
  /** Highest seq placed in order (emitted or queued for emission). */
  private orderedSeq = -1;
  /** Highest seq handed to live members. Members at or past it join live. */
  emittedSeq = -1;
  /** Subscriptions holding this feed (counted by the router, which drops the feed at zero). */
  refs = 0;
  /** Conversation member count as last heard; decides the bus channel (router). */
  memberCount = 0;

  private readonly store: FeedStore;
  private readonly onError: FeedOptions['onError'];
  private readonly recentCapacity: number;
  private readonly onEmit: ((message: MessageRecord) => void) | undefined;
  private readonly onRepair: ((count: number) => void) | undefined;
  private initialized = false;
  private whenInitialized: Promise<void>;
  private markInitialized!: () => void;
  private markFailed!: (error: unknown) => void;
  private early: MessageRecord[] = [];
  private catchUpAfterInit = 0;
  private pending = new Map<number, MessageRecord>();
  private fillTarget = 0;
  private filling = false;
  private queue: MessageRecord[] = [];
  private emitting = false;
  private recent: MessageRecord[] = [];
  private groups = new Map<string, Group>();
  private solo = new Set<FeedMember>();

  constructor(options: FeedOptions) {
    this.conversationId = options.conversationId;
    this.store = options.store;
    this.onError = options.onError;
    this.recentCapacity = options.recentCapacity;
    this.onEmit = options.onEmit;
    this.onRepair = options.onRepair;
    this.whenInitialized = new Promise((resolve, reject) => {
      this.markInitialized = resolve;
      this.markFailed = reject;
    });
    this.whenInitialized.catch(() => {}); // observed by join(); unobserved failures are not errors
  }

  /**
   * Sets the starting point: the conversation's last seq read from the
   * database after the feed began receiving events. Events that arrived
   * before are replayed through the normal path (older ones are dropped).
   */
  initialize(lastSeq: number): void {
    if (this.initialized) return;
    this.initialized = true;
    this.orderedSeq = this.emittedSeq = lastSeq;
    this.markInitialized();
    const early = this.early;
    this.early = [];
    for (const message of early) this.push(message);
    if (this.catchUpAfterInit > this.orderedSeq) this.requestFill(this.catchUpAfterInit + 1);
  }

  /** The starting point could not be read: every member waiting to join fails (and resubscribes). */
  fail(error: unknown): void {
    if (this.initialized) return;
    this.early = [];
    this.markFailed(error);
  }

  /** A message from the bus (or a gap fill). Duplicates and stale seqs are dropped here. */
  push(message: MessageRecord): void {
    if (!this.initialized) {
      this.early.push(message);
      return;
    }
    if (message.seq <= this.orderedSeq) return;
    if (message.seq === this.orderedSeq + 1 && !this.filling) {
      this.enqueue(message);
      this.drainPending();
      return;
    }
    this.pending.set(message.seq, message);
    this.requestFill(message.seq);
  }

  /**
   * The database says the conversation has reached `lastSeq`: fetch whatever
   * the bus did not bring (after a reconnect, or a channel switch).
   */
  catchUpTo(lastSeq: number): void {
    if (!this.initialized) {
      // Not started yet: remember it, initialize() may read an older seq.
      this.catchUpAfterInit = Math.max(this.catchUpAfterInit, lastSeq);
      return;
    }
    if (lastSeq <= this.orderedSeq) return;
    this.requestFill(lastSeq + 1);
  }

  private requestFill(target: number): void {
    this.fillTarget = Math.max(this.fillTarget, target);
    if (!this.filling) void this.fill();
  }

  /** Reads the missing seqs in (orderedSeq, fillTarget) from the database, in pages. */
  private async fill(): Promise<void> {
    this.filling = true;
    let attempts = 0;
    try {
      while (this.orderedSeq + 1 < this.fillTarget) {
        const rows = await this.store.range(this.conversationId, this.orderedSeq, PAGE, this.fillTarget);
        let progressed = 0;
        for (const row of rows) {
          if (row.seq === this.orderedSeq + 1) {
            this.enqueue(row);
            progressed++;
          }
        }
        this.drainContiguous();
        if (progressed > 0) {
          this.onRepair?.(progressed);
          attempts = 0;
          continue;
        }
        // Seqs commit in order, so a published seq's predecessors are already
        // readable; this only happens when reading from a lagging replica. Retry
        // briefly, then skip ahead rather than stall the conversation forever.
        if (++attempts > 5) {
          const next = Math.min(...this.pending.keys(), this.fillTarget);
          this.onError(new Error(`seqs ${this.orderedSeq + 1}..${next - 1} missing from the database`), 'fill gap');
          this.orderedSeq = next - 1;
          this.drainContiguous();
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, 20 * attempts));
      }
    } catch (error) {
      this.onError(error, 'fill gap');
    } finally {
      this.filling = false;
      this.drainPending();
      if (this.pending.size > 0 || this.orderedSeq + 1 < this.fillTarget) {
        // Still behind (an error above): try again shortly.
        setTimeout(() => {
          if (!this.filling && this.refs > 0) void this.fill();
        }, 200).unref();
      } else {
        this.fillTarget = 0;
      }
    }
  }

  private drainPending(): void {
    if (this.filling) return;
    this.drainContiguous();
    if (this.pending.size > 0) this.requestFill(Math.min(...this.pending.keys()));
  }

  /** Moves buffered messages that now follow in order into the emission queue. */
  private drainContiguous(): void {
    for (;;) {
      const next = this.pending.get(this.orderedSeq + 1);
      if (!next) break;
      this.pending.delete(next.seq);
      this.enqueue(next);
    }
    for (const seq of this.pending.keys()) if (seq <= this.orderedSeq) this.pending.delete(seq);
  }

  private enqueue(message: MessageRecord): void {
    this.orderedSeq = message.seq;
    this.queue.push(message);
    if (!this.emitting) void this.pump();
  }

  /** Emits queued messages one at a time; asynchronous renders (rare) keep the order. */
  private async pump(): Promise<void> {
    this.emitting = true;
    try {
      while (this.queue.length > 0) {
        const message = this.queue.shift()!;
        const payloads = new Map<Group, string>();
        // A member may join live while a render is awaited, possibly with a
        // share key no group had: render until every current group has its
        // payload, so nobody who is live when the message is handed out misses it.
        for (;;) {
          const waiting: Promise<void>[] = [];
          for (const group of this.groups.values()) {
            if (payloads.has(group)) continue;
            const payload = this.renderFor(group, message);
            if (typeof payload === 'string') payloads.set(group, payload);
            else waiting.push(payload.then((json) => void payloads.set(group, json)));
          }
          if (waiting.length === 0) break;
          await Promise.all(waiting);
        }
        for (const group of this.groups.values()) {
          const payload = payloads.get(group)!;
          for (const member of group.members) this.hand(member, message, payload);
        }
        for (const member of this.solo) this.hand(member, message, undefined);
        this.emittedSeq = message.seq;
        this.onEmit?.(message);
        if (this.recentCapacity > 0) {
          this.recent.push(message);
          if (this.recent.length > this.recentCapacity) this.recent.shift();
        }
      }
    } catch (error) {
      this.onError(error, 'emit');
    } finally {
      this.emitting = false;
    }
  }

  private hand(member: FeedMember, message: MessageRecord, payload: string | undefined): void {
    // A member that resumed ahead of the feed (its catch-up read newer rows) skips what it has.
    if (message.seq <= member.cursor || member.sink.closed) return;
    member.cursor = message.seq;
    member.sink.deliver(message, payload);
  }

  private renderFor(group: Group, message: MessageRecord): string | Promise<string> {
    let payload = group.rendered.get(message.seq);
    if (payload === undefined) {
      // A render that throws must not cost the message: its subscribers get an error payload instead.
      const failed = (error: unknown) => {
        this.onError(error, 'render');
        return RENDER_FAILED;
      };
      try {
        payload = group.render(message);
        if (typeof payload !== 'string') payload = payload.catch(failed);
      } catch (error) {
        payload = failed(error);
      }
      group.rendered.set(message.seq, payload);
      if (group.rendered.size > RENDER_CACHE) group.rendered.delete(group.rendered.keys().next().value!);
    }
    return payload;
  }

  private groupOf(member: FeedMember): Group | null {
    const key = member.sink.shareKey;
    if (key === null) return null;
    let group = this.groups.get(key);
    if (!group) {
      group = { render: (m) => member.sink.render(m), members: new Set(), rendered: new Map() };
      this.groups.set(key, group);
    }
    return group;
  }

  /**
   * Attaches a member whose cursor says what it already has. If it is
   * behind, it catches up (from recent memory or the database) before it
   * joins the live set; a member never sees a seq twice or out of order.
   */
  async join(member: FeedMember): Promise<void> {
    await this.whenInitialized;
    while (!member.sink.closed && !member.detached) {
      if (member.cursor >= this.emittedSeq) {
        const group = this.groupOf(member);
        if (group) group.members.add(member);
        else this.solo.add(member);
        return;
      }
      const first = this.recent[0];
      const rows =
        first && first.seq <= member.cursor + 1
          ? this.recent.filter((m) => m.seq > member.cursor)
          : await this.store.range(this.conversationId, member.cursor, PAGE, this.emittedSeq + 1);
      if (rows.length === 0) {
        // Nothing readable between the member and the feed: join rather than spin.
        member.cursor = Math.max(member.cursor, this.emittedSeq);
        continue;
      }
      for (const row of rows) {
        if (member.sink.closed || member.detached) break;
        if (row.seq <= member.cursor) continue;
        const group = this.groupOf(member);
        const payload = group ? await this.renderFor(group, row) : undefined;
        if (row.seq <= member.cursor || member.sink.closed) continue;
        member.cursor = row.seq;
        member.sink.deliver(row, payload);
      }
    }
  }

  /** Detaches a member (unsubscribed, left the conversation, socket closed). */
  leave(member: FeedMember): void {
    if (member.detached) return;
    member.detached = true;
    const key = member.sink.shareKey;
    const group = key === null ? undefined : this.groups.get(key);
    if (group) {
      group.members.delete(member);
      if (group.members.size === 0) this.groups.delete(key!);
    } else {
      this.solo.delete(member);
    }
  }

  /** For tests and metrics. */
  get liveCount(): number {
    let count = this.solo.size;
    for (const group of this.groups.values()) count += group.members.size;
    return count;
  }
}
