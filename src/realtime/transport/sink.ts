import type { GraphQLError } from 'graphql';
import type { Context } from '../../context.js';
import type { RealtimeObserver } from '../broker/broker.js';
import type { Renderers, SharedRenderer } from '../render.js';

/**
 * Where a subscription's events go: a transport's end of one subscription
 * (docs/architecture.md, "Transports"). Streams call it in event order.
 */
export interface Sink {
  /**
   * Set by transports that write pre-rendered payloads (the fast lane):
   * subscriptions with the same key share one rendering of each shared event.
   * null: the transport wants the events themselves (an async iterator).
   */
  readonly renderer: SharedRenderer | null;
  /**
   * One event. `payload` is its shared rendering when the stream had one;
   * otherwise the sink renders it for this subscriber. Returns a promise
   * only when it had to wait (an asynchronous render).
   */
  next(event: unknown, payload: string | undefined): void | Promise<void>;
  /** The stream ended by itself: normally, or with an error for the client. */
  end(error: GraphQLError | undefined): void;
  /** Hold writes until `uncork`, then send them in one system call (a batch of events). */
  cork?(): void;
  uncork?(): void;
}

/** A byte stream whose writes can be held and sent together (net.Socket, http.ServerResponse). */
export interface Corkable {
  cork(): void;
  uncork(): void;
}

/** What every sink of a transport shares (one object per transport, not per subscription). */
export interface SinkServices {
  renderers: Renderers;
  observer: RealtimeObserver;
  onError: (error: unknown, what: string) => void;
}

/**
 * A sink that renders events to GraphQL result JSON and writes them to a
 * connection, keeping their order even when some render asynchronously
 * (a resolver that reads the database): later events wait behind them.
 */
export abstract class RenderingSink<S extends SinkServices = SinkServices> implements Sink {
  private tail: Promise<void> | undefined;

  constructor(
    /** Set once, before the first event: a transport may create its sink before it knows the shape. */
    public renderer: SharedRenderer,
    /** The subscriber's own context, for events that are not shared. */
    private readonly context: Context,
    protected readonly services: S,
  ) {}

  /** Writes one rendered payload (an ExecutionResult's JSON). */
  protected abstract write(payload: string): void;
  /** Ends the subscription on the wire. */
  protected abstract finish(error: GraphQLError | undefined): void;

  next(event: unknown, payload: string | undefined): void | Promise<void> {
    if (this.tail) return this.chain(this.tail.then(() => this.deliver(event, payload)));
    const waiting = this.deliver(event, payload);
    if (waiting) return this.chain(waiting);
  }

  end(error: GraphQLError | undefined): void {
    if (this.tail) void this.tail.then(() => this.finish(error));
    else this.finish(error);
  }

  private deliver(event: unknown, payload: string | undefined): void | Promise<void> {
    if (payload !== undefined) return this.write(payload);
    const rendered = this.services.renderers.render(this.renderer.operation, this.context, event);
    if (typeof rendered === 'string') return this.write(rendered);
    return rendered.then((json) => this.write(json));
  }

  private chain(step: Promise<void>): Promise<void> {
    const tail: Promise<void> = step
      .catch((error) => this.services.onError(error, 'deliver'))
      .then(() => {
        if (this.tail === tail) this.tail = undefined;
      });
    this.tail = tail;
    return tail;
  }
}
