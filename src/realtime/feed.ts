/**
 * What a feed reads from storage: the database is the source of truth.
 * `range` returns the items with keys in (after, before), ascending, about
 * `limit` of them, and `through`: every item with a key in (after, through]
 * is among them. Keys may have holes (a compacted read skips superseded
 * events); `through` is what lets the feed move past them.
 */
export interface FeedStore<T> {
  range(conversationId: string, after: number, limit: number, before: number): Promise<{ items: T[]; through: number }>;
}

/**
 * Where a feed sends items: one subscription. Subscribers with the same
 * `shareKey` receive byte-identical payloads, so the feed renders (executes
 * and serializes) each item once per key, not once per subscriber.
 */
export interface FeedSink<T> {
  /** null: this sink renders for itself (it receives the bare item). */
  readonly shareKey: string | null;
  /** Executes and serializes the subscription's selection for an item. Same result for every sink of a key. */
  render(item: T): string | Promise<string>;
  /** Hands over an item in key order; `payload` is the rendered JSON when shareKey is set. */
  deliver(item: T, payload: string | undefined): void;
  /**
   * Bracket several deliveries to this sink (a batch): the transport holds
   * its writes until `uncork` and sends them in one system call.
   */
  cork?(): void;
  uncork?(): void;
  readonly closed: boolean;
}

/** One subscription's place in a feed: the last key it has been given. */
export interface FeedMember<T> {
  cursor: number;
  readonly sink: FeedSink<T>;
  /** Set by `leave`: stops a catch-up in progress from joining the live set. */
  detached?: boolean;
}

interface Group<T> {
  render: (item: T) => string | Promise<string>;
  members: Set<FeedMember<T>>;
  /** Recently rendered payloads by key, so catch-ups and live delivery share the work. */
  rendered: Map<number, string | Promise<string>>;
}

/** In the emission queue: everything up to `through` has been placed (a fill's holes). */
class Advance {
  constructor(readonly through: number) {}
}

const RENDER_CACHE = 32;
const RENDER_FAILED = JSON.stringify({ errors: [{ message: 'Unexpected error.', extensions: { code: 'INTERNAL_SERVER_ERROR' } }] });
const PAGE = 200;
/** Deliveries handed before the feed lets other work run (a fan-out to 10,000 sockets yields). */
const SLICE = 1000;
/** Items emitted together at most: what queued up during the previous batch (a burst). */
const BATCH = RENDER_CACHE;
/** Catch-up reads kept for sharing (each at most PAGE items). */
const SHARED_READS = 8;

export interface FeedOptions<T> {
  conversationId: string;
  /** The item's place in the conversation's sequence (message seq, or event number). */
  keyOf: (item: T) => number;
  store: FeedStore<T>;
  /** Keep this many recent items for subscribers that resume just behind (large conversations). */
  recentCapacity: number;
  onError: (error: unknown, what: string) => void;
  /** Called once per item this feed emits (for the delivery latency metric). */
  onEmit?: (item: T) => void;
  /** Called with the number of items a fill read from the database (what the broker did not bring). */
  onRepair?: (count: number) => void;
}

/**
 * The ordered, gapless stream of one conversation within this process
 * (docs/architecture.md, "Feed"): its messages by seq, or its events by event
 * number. Items arrive from the broker at most once and possibly out of order
 * (two senders publish in either order); the feed emits them in key order,
 * each once, filling any gap from the database before it goes on. It then
 * hands each item to its live members, rendering once per share key.
 *
 * Sequencing happens here once per process, not per subscriber: a gap costs
 * one database read, however many sockets are waiting behind it.
 */
export class ConversationFeed<T> {
  readonly conversationId: string;
  /** Highest key placed in order (emitted or queued for emission). */
  private orderedSeq = -1;
  /** Highest key handed to live members. Members at or past it join live. */
  emittedSeq = -1;
  /** Subscriptions holding this feed (counted by the hub, which drops the feed at zero). */
  refs = 0;
  /** Conversation member count as last heard; decides the broker channel (hub). */
  memberCount = 0;

  private readonly keyOf: (item: T) => number;
  private readonly store: FeedStore<T>;
  private readonly onError: FeedOptions<T>['onError'];
  private readonly recentCapacity: number;
  private readonly onEmit: ((item: T) => void) | undefined;
  private readonly onRepair: ((count: number) => void) | undefined;
  private initialized = false;
  private whenInitialized: Promise<void>;
  private markInitialized!: () => void;
  private markFailed!: (error: unknown) => void;
  private early: T[] = [];
  private catchUpAfterInit = 0;
  private pending = new Map<number, T>();
  private fillTarget = 0;
  private filling = false;
  private queue: (T | Advance)[] = [];
  private emitting = false;
  /** Recent emitted items: every item with a key in (recentFloor, emittedSeq]. */
  private recent: T[] = [];
  private recentFloor = -1;
  private groups = new Map<string, Group<T>>();
  /** Recent catch-up reads by range, shared by members resuming from the same cursor. */
  private reads = new Map<string, Promise<{ items: T[]; through: number }>>();
  private solo = new Set<FeedMember<T>>();

  constructor(options: FeedOptions<T>) {
    this.conversationId = options.conversationId;
    this.keyOf = options.keyOf;
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
   * Sets the starting point: the conversation's position read from the
   * database after the feed began receiving items. Items that arrived before
   * are replayed through the normal path (older ones are dropped).
   */
  initialize(position: number): void {
    if (this.initialized) return;
    this.initialized = true;
    this.orderedSeq = this.emittedSeq = this.recentFloor = position;
    this.markInitialized();
    const early = this.early;
    this.early = [];
    for (const item of early) this.push(item);
    if (this.catchUpAfterInit > this.orderedSeq) this.requestFill(this.catchUpAfterInit + 1);
  }

  /** The starting point could not be read: every member waiting to join fails (and resubscribes). */
  fail(error: unknown): void {
    if (this.initialized) return;
    this.early = [];
    this.markFailed(error);
  }

  /** An item from the broker. Duplicates and stale keys are dropped here. */
  push(item: T): void {
    if (!this.initialized) {
      this.early.push(item);
      return;
    }
    const key = this.keyOf(item);
    if (key <= this.orderedSeq) return;
    if (key === this.orderedSeq + 1 && !this.filling) {
      this.enqueue(item);
      this.drainPending();
      return;
    }
    this.pending.set(key, item);
    this.requestFill(key);
  }

  /**
   * The database says the conversation has reached `position`: fetch whatever
   * the broker did not bring (after a reconnect, a channel switch, or in the
   * position check).
   */
  catchUpTo(position: number): void {
    if (!this.initialized) {
      // Not started yet: remember it, initialize() may read an older position.
      this.catchUpAfterInit = Math.max(this.catchUpAfterInit, position);
      return;
    }
    if (position <= this.orderedSeq) return;
    this.requestFill(position + 1);
  }

  private requestFill(target: number): void {
    this.fillTarget = Math.max(this.fillTarget, target);
    if (!this.filling) void this.fill();
  }

  /** Reads what is missing below fillTarget from the database, in pages. */
  private async fill(): Promise<void> {
    this.filling = true;
    try {
      while (this.orderedSeq + 1 < this.fillTarget) {
        const { items, through } = await this.store.range(this.conversationId, this.orderedSeq, PAGE, this.fillTarget);
        let read = 0;
        for (const item of items) {
          if (this.keyOf(item) > this.orderedSeq) {
            this.enqueue(item);
            read++;
          }
        }
        if (through > this.orderedSeq) this.advance(through);
        if (read > 0) this.onRepair?.(read);
        this.drainContiguous();
        if (read === 0 && through <= this.orderedSeq && this.orderedSeq + 1 < this.fillTarget) {
          // The database does not have what the broker announced yet (a lagging
          // replica): try again shortly rather than spin.
          throw new Error(`events ${this.orderedSeq + 1}..${this.fillTarget - 1} not readable yet`);
        }
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

  /** Moves buffered items that now follow in order into the emission queue; drops what a fill covered. */
  private drainContiguous(): void {
    for (;;) {
      const next = this.pending.get(this.orderedSeq + 1);
      if (!next) break;
      this.pending.delete(this.orderedSeq + 1);
      this.enqueue(next);
    }
    for (const key of this.pending.keys()) if (key <= this.orderedSeq) this.pending.delete(key);
  }

  private enqueue(item: T): void {
    this.orderedSeq = this.keyOf(item);
    this.queue.push(item);
    if (!this.emitting) void this.pump();
  }

  /** Everything up to `through` is placed, holes included (superseded events a compacted read skipped). */
  private advance(through: number): void {
    this.orderedSeq = through;
    this.queue.push(new Advance(through));
    if (!this.emitting) void this.pump();
  }

  /**
   * Emits queued items in order, in batches of the items that queued up
   * while the previous batch went out (a burst into a large group); an
   * asynchronous render (rare) keeps the order.
   */
  private async pump(): Promise<void> {
    this.emitting = true;
    try {
      while (this.queue.length > 0) {
        const next = this.queue[0]!;
        if (next instanceof Advance) {
          this.queue.shift();
          if (next.through > this.emittedSeq) {
            this.emittedSeq = next.through;
            if (this.recent.length === 0) this.recentFloor = next.through;
          }
          continue;
        }
        let count = 1;
        while (count < BATCH && count < this.queue.length && !(this.queue[count] instanceof Advance)) count++;
        await this.emit(this.queue.splice(0, count) as T[]);
      }
    } catch (error) {
      this.onError(error, 'emit');
    } finally {
      this.emitting = false;
    }
  }

  /**
   * Hands consecutive items to every live member, member by member: each
   * member gets all of them in one corked write (one system call per socket
   * per batch, not per item: the write is most of a delivery's cost). Each
   * item is rendered once per share key. Members joining meanwhile (cursor
   * at emittedSeq, which moves only at the end) are reached by the same loop.
   */
  private async emit(items: T[]): Promise<void> {
    const payloads = new Map<Group<T>, string[]>();
    // Render every group's payloads first (usually synchronous; a render
    // that reads the database is awaited here, before anything is handed).
    for (;;) {
      const waiting: Promise<void>[] = [];
      for (const group of this.groups.values()) {
        if (payloads.has(group)) continue;
        const rendered = items.map((item) => this.renderFor(group, item));
        if (rendered.every((payload) => typeof payload === 'string')) payloads.set(group, rendered as string[]);
        else waiting.push(Promise.all(rendered).then((all) => void payloads.set(group, all)));
      }
      if (waiting.length === 0) break;
      await Promise.all(waiting);
    }
    let handed = 0;
    for (const group of this.groups.values()) {
      let rendered = payloads.get(group);
      for (const member of group.members) {
        // A group that appeared during a yield below renders now.
        if (!rendered) payloads.set(group, (rendered = await Promise.all(items.map((item) => this.renderFor(group, item)))));
        this.handAll(member, items, rendered);
        handed += items.length;
        // Let other work run during a fan-out to thousands of sockets.
        if (handed >= SLICE) {
          handed = 0;
          await new Promise((resolve) => setImmediate(resolve));
        }
      }
    }
    for (const member of this.solo) this.handAll(member, items, undefined);
    for (const item of items) {
      const key = this.keyOf(item);
      this.emittedSeq = key;
      this.onEmit?.(item);
      if (this.recentCapacity > 0) {
        this.recent.push(item);
        if (this.recent.length > this.recentCapacity) this.recentFloor = this.keyOf(this.recent.shift()!);
      } else {
        this.recentFloor = key;
      }
    }
  }

  private handAll(member: FeedMember<T>, items: T[], payloads: string[] | undefined): void {
    if (items.length === 1) return this.hand(member, items[0]!, payloads?.[0]);
    member.sink.cork?.();
    try {
      for (let i = 0; i < items.length; i++) this.hand(member, items[i]!, payloads?.[i]);
    } finally {
      member.sink.uncork?.();
    }
  }

  private hand(member: FeedMember<T>, item: T, payload: string | undefined): void {
    const key = this.keyOf(item);
    // A member that resumed ahead of the feed (its catch-up read newer rows) skips what it has.
    if (key <= member.cursor || member.sink.closed) return;
    member.cursor = key;
    member.sink.deliver(item, payload);
  }

  private renderFor(group: Group<T>, item: T): string | Promise<string> {
    const key = this.keyOf(item);
    let payload = group.rendered.get(key);
    if (payload === undefined) {
      // A render that throws must not cost the item: its subscribers get an error payload instead.
      const failed = (error: unknown) => {
        this.onError(error, 'render');
        return RENDER_FAILED;
      };
      try {
        payload = group.render(item);
        if (typeof payload !== 'string') payload = payload.catch(failed);
      } catch (error) {
        payload = failed(error);
      }
      group.rendered.set(key, payload);
      if (group.rendered.size > RENDER_CACHE) group.rendered.delete(group.rendered.keys().next().value!);
    }
    return payload;
  }

  private groupOf(member: FeedMember<T>): Group<T> | null {
    const key = member.sink.shareKey;
    if (key === null) return null;
    let group = this.groups.get(key);
    if (!group) {
      group = { render: (item) => member.sink.render(item), members: new Set(), rendered: new Map() };
      this.groups.set(key, group);
    }
    return group;
  }

  /**
   * Attaches a member whose cursor says what it already has. If it is
   * behind, it catches up (from recent memory or the database) before it
   * joins the live set; a member never sees a key twice or out of order.
   */
  async join(member: FeedMember<T>): Promise<void> {
    await this.whenInitialized;
    while (!member.sink.closed && !member.detached) {
      if (member.cursor >= this.emittedSeq) {
        const group = this.groupOf(member);
        if (group) group.members.add(member);
        else this.solo.add(member);
        return;
      }
      let items: T[];
      let through: number;
      if (this.recentCapacity > 0 && this.recentFloor <= member.cursor) {
        items = this.recent.filter((item) => this.keyOf(item) > member.cursor);
        through = this.emittedSeq;
      } else {
        ({ items, through } = await this.sharedRange(member.cursor, this.emittedSeq + 1));
      }
      // The catch-up goes out in one corked write, as a live batch does (handAll):
      // after a reconnect storm, a write per missed item per socket was most of the work.
      member.sink.cork?.();
      try {
        for (const item of items) {
          if (member.sink.closed || member.detached) return;
          const key = this.keyOf(item);
          if (key <= member.cursor) continue;
          const group = this.groupOf(member);
          const payload = group ? await this.renderFor(group, item) : undefined;
          if (key <= member.cursor || member.sink.closed) continue;
          member.cursor = key;
          member.sink.deliver(item, payload);
        }
      } finally {
        member.sink.uncork?.();
      }
      member.cursor = Math.max(member.cursor, through);
    }
  }

  /**
   * A catch-up read, shared by every member that needs the same range: after
   * a restart or a reconnect storm, thousands of subscribers resume from the
   * same cursor at once, and one read serves them all (kept for the few
   * latest ranges; a new item makes a new range, so nothing stale is served).
   */
  private sharedRange(after: number, before: number): Promise<{ items: T[]; through: number }> {
    const key = `${after}:${before}`;
    let read = this.reads.get(key);
    if (!read) {
      read = this.store.range(this.conversationId, after, PAGE, before);
      this.reads.set(key, read);
      if (this.reads.size > SHARED_READS) this.reads.delete(this.reads.keys().next().value!);
      // A failed read is not kept: the next member tries again.
      read.catch(() => this.reads.get(key) === read && this.reads.delete(key));
    }
    return read;
  }

  /** Detaches a member (unsubscribed, left the conversation, socket closed). */
  leave(member: FeedMember<T>): void {
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
