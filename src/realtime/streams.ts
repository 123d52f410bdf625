import type { GraphQLError, GraphQLResolveInfo } from 'graphql';
import type { WebSocket } from 'ws';
import type { StreamStart } from '../chat/streams.js';
import type { MessageRecord, UserRecord } from '../chat/records.js';
import { requireViewer, type Context } from '../context.js';
import { forbidden, maskError } from '../errors.js';
import type { BusEvent, RealtimeObserver } from './bus.js';
import { CloseReason } from './close-codes.js';
import type { ConversationFeed, FeedMember, FeedSink } from './feed.js';
import { render, sharedRendererFor, type SharedRenderer } from './render.js';
import type { MembershipListener, Router } from './router.js';

/** Root values of the inbox subscription besides messages. */
export interface ConversationJoinedEvent {
  kind: 'ConversationJoined';
  conversationId: string;
  /** Exactly where this subscription starts the conversation: messages with greater seqs follow. */
  afterSeq: number;
}
export interface ConversationLeftEvent {
  kind: 'ConversationLeft';
  conversationId: string;
  reason: 'LEFT' | 'REMOVED';
}
export interface PresenceChangedEvent {
  kind: 'PresenceEvent';
  userId: string;
  online: boolean;
}
export interface TypingEvent {
  kind: 'TypingEvent';
  conversationId: string;
  user: UserRecord;
  typing: boolean;
  expiresAt: Date;
}
export type StreamEvent = MessageRecord | ConversationJoinedEvent | ConversationLeftEvent | PresenceChangedEvent | TypingEvent;

export interface StreamDeps {
  router: Router;
  /** Context for payloads rendered once and shared (no viewer). */
  sharedContext: Context;
  maxSocketBufferBytes: number;
  onError: (error: unknown, what: string) => void;
  observer: RealtimeObserver;
  /** For rechecks after a bus reconnect, when a `left` event may have been lost. */
  isMember: (conversationId: string, userId: string) => Promise<boolean>;
}

/**
 * Where a stream's events go.
 *
 * Over graphql-ws the stream writes `next` frames straight to the socket:
 * messages arrive pre-rendered (executed and serialized once per share key
 * by the feed), so each subscriber costs a string concatenation and a
 * `send`. Elsewhere (Server-Sent Events) events are queued and the iterator
 * yields them for graphql-js to execute.
 */
interface Output {
  /** Set when payloads can be shared with other subscriptions (socket mode). */
  readonly shared: SharedRenderer | null;
  /** Sends a message or a private event; `payload` is the shared rendering when there is one. */
  send(event: StreamEvent, payload: string | undefined): void | Promise<void>;
}

class SocketOutput implements Output {
  private readonly prefix: string;

  constructor(
    private readonly socket: WebSocket,
    id: string,
    readonly shared: SharedRenderer,
    /** Private events (membership, presence, typing) are rendered for this viewer alone, in this context. */
    private readonly context: Context,
    private readonly maxBuffer: number,
    private readonly observer: RealtimeObserver,
  ) {
    this.prefix = `{"id":${JSON.stringify(id)},"type":"next","payload":`;
  }

  send(event: StreamEvent, payload: string | undefined): void | Promise<void> {
    if (payload !== undefined) return this.write(payload);
    // The shared renderer's operation serves: same selection, same payload-relevant variables.
    const own = render(this.shared.operation, this.context, event);
    if (typeof own === 'string') return this.write(own);
    return own.then((json) => this.write(json));
  }

  private write(payload: string): void {
    const socket = this.socket;
    if (socket.readyState !== socket.OPEN) return;
    if (socket.bufferedAmount > this.maxBuffer) {
      // It cannot keep up; holding an ever-growing backlog would hurt every
      // other socket. The client reconnects and resumes from its cursor.
      socket.close(CloseReason.SlowConsumer, 'Slow consumer: reconnect and resume from your cursor');
      return;
    }
    socket.send(this.prefix + payload + '}');
    this.observer.delivered();
  }
}

class QueueOutput implements Output {
  readonly shared = null;
  constructor(
    private readonly push: (event: StreamEvent) => void,
    private readonly observer: RealtimeObserver,
  ) {}
  send(event: StreamEvent): void {
    this.push(event);
    this.observer.delivered();
  }
}

/**
 * A subscription fed by the router. It is the AsyncIterator graphql-js gets
 * from the root field's `subscribe`: over graphql-ws it yields nothing (its
 * output goes straight to the socket) and only ends, normally or with an
 * error; otherwise it yields its events.
 */
export abstract class RoutedStream implements AsyncIterableIterator<StreamEvent>, MembershipListener, FeedSink {
  protected readonly context: Context;
  protected readonly deps: StreamDeps;
  protected readonly output: Output;
  protected readonly userId: string;
  private readonly field: string;
  private done = false;
  private failure: GraphQLError | undefined;
  /** Only in queue mode (socket mode never queues): allocated on first use. */
  private queue: StreamEvent[] | undefined;
  private waiter: ((result: IteratorResult<StreamEvent>) => void) | undefined;
  private failWaiter: ((error: unknown) => void) | undefined;

  constructor(context: Context, info: GraphQLResolveInfo, deps: StreamDeps) {
    this.context = context;
    this.deps = deps;
    this.userId = requireViewer(context).id;
    const transport = context.transport;
    this.output = transport
      ? new SocketOutput(
          transport.socket,
          transport.id,
          sharedRendererFor(info, transport.variables, deps.sharedContext),
          context,
          deps.maxSocketBufferBytes,
          deps.observer,
        )
      : new QueueOutput((event) => this.enqueue(event), deps.observer);
    this.field = info.fieldName;
    deps.observer.subscriptionStarted(this.field);
  }

  get closed(): boolean {
    return this.done;
  }

  /** The error the stream ended with, if it ended by itself with one. */
  protected get endedWith(): GraphQLError | undefined {
    return this.failure;
  }

  // The stream is the feed sink of every conversation it follows: no
  // per-conversation objects or closures (memory per subscription matters).
  get shareKey(): string | null {
    return this.output.shared?.key ?? null;
  }

  render(message: MessageRecord): string | Promise<string> {
    return this.output.shared!.render(message);
  }

  deliver(message: MessageRecord, payload: string | undefined): void {
    const sent = this.output.send(message, payload);
    if (sent) sent.catch((error) => this.deps.onError(error, 'deliver'));
  }

  /** Attaches to a feed and catches up in the background; a failure ends the stream. */
  protected follow(feed: ConversationFeed, member: FeedMember): void {
    feed.join(member).catch((error) => {
      this.deps.onError(error, 'catch up');
      this.finish(maskError(error));
    });
  }

  private enqueue(event: StreamEvent): void {
    if (this.done) return;
    if (this.waiter) {
      const resolve = this.waiter;
      this.waiter = this.failWaiter = undefined;
      resolve({ value: event, done: false });
    } else {
      (this.queue ??= []).push(event);
    }
  }

  /** Ends the stream; with an error, the client receives it (graphql-ws `error`) and no `complete`. */
  /**
   * Set by the WebSocket protocol loop, which does not iterate the stream: it
   * is told when the stream ends by itself (error, or the server completing
   * it), not when the client ended it.
   */
  onEnd: ((error: GraphQLError | undefined) => void) | undefined;

  protected finish(error?: GraphQLError, byClient = false): void {
    if (this.done) return;
    this.done = true;
    this.failure = error;
    this.deps.observer.subscriptionEnded(this.field);
    this.teardown();
    if (!byClient && this.onEnd) this.onEnd(error);
    if (this.waiter) {
      const resolve = this.waiter;
      const reject = this.failWaiter!;
      this.waiter = this.failWaiter = undefined;
      if (error) reject(error);
      else resolve({ value: undefined, done: true });
    }
  }

  protected abstract teardown(): void;
  abstract onJoined(event: Extract<BusEvent, { type: 'joined' }>): void;
  abstract onLeft(event: Extract<BusEvent, { type: 'left' }>): void;
  abstract onResync(): void;

  next(): Promise<IteratorResult<StreamEvent>> {
    const queued = this.queue?.shift();
    if (queued !== undefined) return Promise.resolve({ value: queued, done: false });
    if (this.done) {
      const error = this.failure;
      this.failure = undefined;
      return error ? Promise.reject(error) : Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => {
      this.waiter = resolve;
      this.failWaiter = reject;
    });
  }

  return(): Promise<IteratorResult<StreamEvent>> {
    this.finish(undefined, true);
    this.queue = undefined;
    return Promise.resolve({ value: undefined, done: true });
  }

  throw(error: unknown): Promise<IteratorResult<StreamEvent>> {
    this.finish(undefined, true);
    return Promise.reject(error);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

/** `messageAdded(conversationId, afterSeq)`: one conversation, resumable from a cursor. */
export class ConversationStream extends RoutedStream {
  private feed: ConversationFeed | undefined;
  private member: FeedMember | undefined;
  private conversationId = '';

  /** Call once, before handing the stream to graphql-js; authorization already happened. */
  /**
   * `authorize` runs after the user's channel is live: a removal committed
   * after the authorization then arrives as a `left` event, which ends the
   * stream, instead of falling between the check and the subscription.
   */
  async start(conversationId: string, authorize: () => Promise<StreamStart & { cursor: number }>): Promise<this> {
    this.conversationId = conversationId;
    let start: StreamStart & { cursor: number };
    try {
      await this.deps.router.attachUser(this.userId, this);
      start = await authorize();
      const [feed] = await this.deps.router.acquire([{ id: start.conversationId, memberCount: start.memberCount }]);
      this.feed = feed!;
    } catch (error) {
      this.finish();
      throw error;
    }
    if (this.closed) {
      this.teardown();
      // Removed while starting: say so now, as an error of the subscribe.
      if (this.endedWith) throw this.endedWith;
      return this;
    }
    this.member = { cursor: start.cursor, sink: this };
    this.follow(this.feed, this.member);
    return this;
  }

  onJoined(): void {}

  onLeft(event: Extract<BusEvent, { type: 'left' }>): void {
    if (event.conversationId !== this.conversationId) return;
    this.finish(forbidden('You are no longer a member of this conversation'));
  }

  /** Events may have been lost, a `left` among them: ask the database whether the viewer is still a member. */
  onResync(): void {
    this.deps
      .isMember(this.conversationId, this.userId)
      .then((member) => {
        if (!member) this.finish(forbidden('You are no longer a member of this conversation'));
      })
      .catch((error) => this.deps.onError(error, 'membership recheck'));
  }

  protected teardown(): void {
    if (this.member && this.feed) this.feed.leave(this.member);
    if (this.feed) {
      this.deps.router.release(this.feed);
      this.feed = undefined;
    }
    this.deps.router.detachUser(this.userId, this);
  }
}

/**
 * `inbox(cursors)`: every conversation of the viewer on one subscription,
 * including conversations joined after it started. Membership changes are
 * events of their own (ConversationJoined / ConversationLeft).
 */
export class InboxStream extends RoutedStream {
  private readonly attached = new Map<string, { feed: ConversationFeed; member: FeedMember }>();
  /** Membership changes are applied one at a time, in arrival order. */
  private changes: Promise<void> = Promise.resolve();
  private loadInbox: (() => Promise<StreamStart[]>) | undefined;

  /**
   * `announce`: send ConversationJoined (with its exact starting seq) for
   * every conversation the client gave no cursor for, so a client learns of
   * conversations it did not know about when it subscribed.
   */
  async start(loadInbox: () => Promise<StreamStart[]>, cursors: Map<string, number>, announce = false): Promise<this> {
    this.loadInbox = loadInbox;
    try {
      // Channel first, then the database: a change after the read arrives as an event.
      await this.deps.router.attachUser(this.userId, this);
      // The first load and attach are the first step of the chain that applies
      // membership events, so a `left` that arrives meanwhile is applied after
      // it (and detaches what it just attached) rather than before it.
      const first = this.changes.then(async () => {
        const inbox = await loadInbox();
        if (announce) {
          for (const entry of inbox) {
            if (cursors.has(entry.conversationId)) continue;
            await this.output.send({ kind: 'ConversationJoined', conversationId: entry.conversationId, afterSeq: entry.lastSeq }, undefined);
          }
        }
        await this.attach(inbox, (entry) => Math.min(cursors.get(entry.conversationId) ?? entry.lastSeq, entry.lastSeq));
      });
      this.changes = first.catch(() => {});
      await first;
    } catch (error) {
      this.finish();
      throw error;
    }
    return this;
  }

  private async attach(entries: StreamStart[], cursorOf: (entry: StreamStart) => number): Promise<void> {
    const fresh = entries.filter((entry) => !this.attached.has(entry.conversationId));
    if (fresh.length === 0 || this.closed) return;
    const feeds = await this.deps.router.acquire(fresh.map((e) => ({ id: e.conversationId, memberCount: e.memberCount })));
    fresh.forEach((entry, index) => {
      const feed = feeds[index]!;
      if (this.closed || this.attached.has(entry.conversationId)) {
        this.deps.router.release(feed);
        return;
      }
      const member: FeedMember = { cursor: cursorOf(entry), sink: this };
      this.attached.set(entry.conversationId, { feed, member });
      this.follow(feed, member);
    });
  }

  private detach(conversationId: string): boolean {
    const entry = this.attached.get(conversationId);
    if (!entry) return false;
    this.attached.delete(conversationId);
    entry.feed.leave(entry.member);
    this.deps.router.release(entry.feed);
    return true;
  }

  private serially(work: () => Promise<void>): void {
    this.changes = this.changes.then(work).catch((error) => this.deps.onError(error, 'membership change'));
  }

  onJoined(event: Extract<BusEvent, { type: 'joined' }>): void {
    this.serially(async () => {
      if (this.closed || this.attached.has(event.conversationId)) return;
      // Tell the client first, so the conversation exists for it before its first message.
      await this.output.send({ kind: 'ConversationJoined', conversationId: event.conversationId, afterSeq: event.lastSeq }, undefined);
      await this.attach(
        [{ conversationId: event.conversationId, memberCount: event.memberCount, lastSeq: event.lastSeq }],
        () => event.lastSeq,
      );
    });
  }

  onLeft(event: Extract<BusEvent, { type: 'left' }>): void {
    this.serially(async () => {
      if (this.closed || !this.detach(event.conversationId)) return;
      await this.output.send({ kind: 'ConversationLeft', conversationId: event.conversationId, reason: event.reason }, undefined);
    });
  }

  /** Membership events may have been lost: compare with the database and apply the difference. */
  onResync(): void {
    this.serially(async () => {
      if (this.closed || !this.loadInbox) return;
      const inbox = await this.loadInbox();
      const current = new Set(inbox.map((entry) => entry.conversationId));
      for (const conversationId of [...this.attached.keys()]) {
        if (!current.has(conversationId) && this.detach(conversationId)) {
          await this.output.send({ kind: 'ConversationLeft', conversationId, reason: 'REMOVED' }, undefined);
        }
      }
      const joined = inbox.filter((entry) => !this.attached.has(entry.conversationId));
      for (const entry of joined) {
        await this.output.send({ kind: 'ConversationJoined', conversationId: entry.conversationId, afterSeq: entry.lastSeq }, undefined);
      }
      await this.attach(joined, (entry) => entry.lastSeq);
    });
  }

  protected teardown(): void {
    for (const conversationId of [...this.attached.keys()]) this.detach(conversationId);
    this.deps.router.detachUser(this.userId, this);
  }
}
