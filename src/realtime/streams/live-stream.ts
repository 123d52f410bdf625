import type { GraphQLError } from 'graphql';
import type { Viewer } from '../../auth.js';
import { requireViewer, type Context } from '../../context.js';
import { forbidden, maskError } from '../../errors.js';
import type { BusEvent, RealtimeObserver } from '../broker/broker.js';
import type { ConversationFeed, FeedMember, FeedSink } from '../feed.js';
import type { Hub, MembershipListener } from '../hub.js';
import type { Presence } from '../presence/presence.js';
import type { PresenceWatch } from '../presence/presence-watch.js';
import type { Sink } from '../transport/sink.js';

/** What streams need from the delivery core; one per app (src/realtime/index.ts). */
export interface StreamDeps {
  hub: Hub;
  presence: Presence;
  presenceWatch: PresenceWatch;
  /** For rechecks when a user's conversations changed and a `left` event may have been lost. */
  isMember: (conversationId: string, userId: string) => Promise<boolean>;
  onError: (error: unknown, what: string) => void;
  observer: RealtimeObserver;
}

/** The context of a GraphQL operation carries the delivery core its streams use. */
export function streamDepsOf(context: Context): StreamDeps {
  return context.realtime.streamDeps;
}

/** Events a queued (iterator-mode) stream may hold before it ends as a slow consumer. */
const MAX_QUEUED_EVENTS = 10_000;

/** The sink of a stream that is iterated (graphql-js's `subscribe`): events queue until asked for. */
class IteratorSink implements Sink {
  readonly renderer = null;
  queue: unknown[] | undefined;
  waiter: { resolve: (result: IteratorResult<unknown>) => void; reject: (error: unknown) => void } | undefined;

  constructor(private readonly stream: LiveStream) {}

  next(event: unknown): void {
    if (this.waiter) {
      const { resolve } = this.waiter;
      this.waiter = undefined;
      resolve({ value: event, done: false });
      return;
    }
    const queue = (this.queue ??= []);
    queue.push(event);
    if (queue.length > MAX_QUEUED_EVENTS) this.stream.overflowed();
  }

  end(): void {
    this.stream.ended();
  }
}

/**
 * A live subscription, whatever carries it (docs/architecture.md, "Streams").
 *
 * A subscription field's `subscribe` resolver creates one and calls its
 * `start` (authorize, register with the hub); the resolver returns it. The
 * transport then either attaches a {@link Sink} (the fast lane: payloads
 * arrive pre-rendered, shared by every subscriber of the same shape) or,
 * when it does not know streams, iterates it as an AsyncIterator and
 * executes each event itself (graphql-js's `subscribe`). Delivery begins at
 * that moment, not before.
 *
 * Subclasses say what to follow (`start`, `activate`) and react to the
 * viewer's membership changes; the base class owns the lifecycle.
 */
export abstract class LiveStream implements AsyncIterableIterator<unknown>, MembershipListener, FeedSink<unknown> {
  protected readonly viewer: Viewer;
  protected readonly deps: StreamDeps;
  private sink: Sink | undefined;
  /** Events emitted before a sink was attached (e.g. ConversationJoined announced while starting). */
  private early: unknown[] | undefined;
  private done = false;
  private failure: GraphQLError | undefined;

  constructor(
    context: Context,
    /** The subscription field, for metrics. */
    private readonly field: string,
  ) {
    this.viewer = requireViewer(context);
    this.deps = streamDepsOf(context);
    this.deps.observer.subscriptionStarted(field);
  }

  /** Joins feeds and starts watching: called once, when a sink is attached. */
  protected abstract activate(): void;
  /** Releases everything the stream holds (hub registrations, feeds); called once. */
  protected abstract teardown(): void;

  onJoined(_event: Extract<BusEvent, { type: 'joined' }>): void {}
  onLeft(_event: Extract<BusEvent, { type: 'left' }>): void {}
  onResync(): void {}

  get closed(): boolean {
    return this.done;
  }

  /** The fast lane: the transport takes pre-rendered payloads. Delivery starts now. */
  attach(sink: Sink): void {
    if (this.sink || this.done) return;
    this.sink = sink;
    const early = this.early;
    this.early = undefined;
    for (const event of early ?? []) this.emit(event);
    this.activate();
  }

  // ---- FeedSink: the stream is the feed sink of every conversation it follows
  // (no per-conversation objects or closures: memory per subscription matters).

  get shareKey(): string | null {
    return this.sink?.renderer?.key ?? null;
  }

  render(item: unknown): string | Promise<string> {
    return this.sink!.renderer!.render(item);
  }

  deliver(item: unknown, payload: string | undefined): void {
    this.emit(item, payload);
  }

  cork(): void {
    this.sink?.cork?.();
  }

  uncork(): void {
    this.sink?.uncork?.();
  }

  /** Joins a feed member in the background; a failed catch-up ends the stream (the client resumes). */
  protected follow<T>(feed: ConversationFeed<T>, member: FeedMember<T>): void {
    feed.join(member).catch((error) => {
      this.deps.onError(error, 'catch up');
      this.end(maskError(error));
    });
  }

  /**
   * Sends one event, in order with everything else this stream sends.
   * Returns a promise when the sink had to wait (an asynchronous render):
   * callers that must not run ahead of it (membership changes) await it.
   */
  protected emit(event: unknown, payload?: string): void | Promise<void> {
    if (this.done) return;
    this.deps.observer.delivered();
    if (this.sink) return this.sink.next(event, payload);
    (this.early ??= []).push(event);
  }

  /** Ends the stream from the server side; with an error, the client receives it. */
  protected end(error?: GraphQLError): void {
    if (this.done) return;
    this.finish(error);
    if (this.sink) this.sink.end(error);
  }

  /** Ends the stream because the viewer lost access to the conversation it follows. */
  protected endForbidden(): void {
    this.end(forbidden('You are no longer a member of this conversation'));
  }

  /** The error the stream ended with while starting, if any: the subscribe resolver throws it. */
  protected get endedWith(): GraphQLError | undefined {
    return this.failure;
  }

  private finish(error: GraphQLError | undefined): void {
    this.done = true;
    this.failure = error;
    this.deps.observer.subscriptionEnded(this.field);
    this.teardown();
  }

  // ---- Iterator mode (any transport that does not attach a sink). Its queue
  // lives in its own sink, created on first use only: fast-lane streams, the
  // many, pay nothing for it.

  private get iterating(): IteratorSink | undefined {
    return this.sink instanceof IteratorSink ? this.sink : undefined;
  }

  /** Called by the iterator sink: too many events queued. */
  overflowed(): void {
    this.end(maskError(new Error('Slow consumer')));
  }

  /** Called by the iterator sink: the stream ended by itself. */
  ended(): void {
    this.wake();
  }

  private wake(): void {
    const iterating = this.iterating;
    const waiter = iterating?.waiter;
    if (!iterating || !waiter) return;
    iterating.waiter = undefined;
    const error = this.failure;
    this.failure = undefined;
    if (error) waiter.reject(error);
    else waiter.resolve({ value: undefined, done: true });
  }

  next(): Promise<IteratorResult<unknown>> {
    if (!this.sink && !this.done) this.attach(new IteratorSink(this));
    const iterating = this.iterating;
    const queued = iterating?.queue?.shift();
    if (queued !== undefined) return Promise.resolve({ value: queued, done: false });
    if (this.done) {
      const error = this.failure;
      this.failure = undefined;
      return error ? Promise.reject(error) : Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => {
      if (iterating) iterating.waiter = { resolve, reject };
    });
  }

  /** The transport's handle on a running subscription: the client ended it. */
  cancel(): void {
    void this.return();
  }

  /** The client ended it (or the transport went away): no end message is sent. */
  return(): Promise<IteratorResult<unknown>> {
    if (!this.done) this.finish(undefined);
    const iterating = this.iterating;
    if (iterating) iterating.queue = undefined;
    this.wake();
    return Promise.resolve({ value: undefined, done: true });
  }

  throw(error: unknown): Promise<IteratorResult<unknown>> {
    void this.return();
    return Promise.reject(error);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

/**
 * A stream scoped to one conversation: it ends with FORBIDDEN when the viewer
 * leaves or is removed, told by a `left` event or, if that was lost, by the
 * position check noticing the viewer's conversations changed.
 */
export abstract class ConversationScopedStream extends LiveStream {
  protected conversationId = '';

  override onLeft(event: Extract<BusEvent, { type: 'left' }>): void {
    if (event.conversationId === this.conversationId) this.endForbidden();
  }

  override onResync(): void {
    if (this.closed || !this.conversationId) return;
    this.deps
      .isMember(this.conversationId, this.viewer.id)
      .then((member) => {
        if (!member) this.endForbidden();
      })
      .catch((error) => this.deps.onError(error, 'membership recheck'));
  }

  /** After `start` registered with the hub: if the viewer was removed meanwhile, say so as an error of the subscribe. */
  protected throwIfEnded(): void {
    if (this.closed && this.endedWith) throw this.endedWith;
  }
}
