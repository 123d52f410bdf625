import type { DocumentNode, GraphQLError } from 'graphql';
import { GRAPHQL_TRANSPORT_WS_PROTOCOL, MessageType, parseMessage, type Message } from 'graphql-ws';
import type { Auth, Viewer } from '../../auth.js';
import type { Context } from '../../context.js';
import { ChatError, ErrorCode } from '../../errors.js';
import type { RealtimeObserver } from '../broker/broker.js';
import type { Presence } from '../presence/presence.js';
import type { Renderers, SharedRenderer } from '../render.js';
import { retryAfterMsOf, type ConnectionGate } from '../../security/abuse.js';
import { CloseReason } from './close-codes.js';
import type { Operations, RunningSubscription } from './operations.js';
import { RenderingSink, type Corkable } from './sink.js';

/**
 * What the protocol needs of a WebSocket: the `ws` package's sockets have
 * this shape, and so does any other implementation an adapter wraps.
 */
export interface ProtocolSocket {
  readonly readyState: number;
  /** Bytes queued but not yet sent: how far behind the peer is. */
  readonly bufferedAmount: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

const OPEN = 1;

/** Reports each finished query or mutation (logs, metrics); `errors` are the codes returned. */
export type OperationListener = (
  ids: { connectionId: string; operationId: string },
  document: DocumentNode,
  operationName: string | null | undefined,
  seconds: number,
  errors: string[] | undefined,
) => void;

export interface ProtocolOptions {
  operations: Operations;
  renderers: Renderers;
  /** The same context factory HTTP requests use (one context per connection). */
  createContext: (viewer: Viewer) => Context;
  maskError: (error: GraphQLError) => GraphQLError;
  auth: Auth;
  /** Called once per accepted connection (creates the user on first use). */
  onViewer: (viewer: Viewer) => Promise<void>;
  presence: Presence;
  /** A socket with more unsent bytes than this is closed (1013): it cannot keep up. */
  maxBufferedBytes: number;
  observer: RealtimeObserver;
  onOperation?: OperationListener;
  onSubscriptionStart?: (ids: { connectionId: string; operationId: string }, document: DocumentNode, operationName: string | null | undefined) => void;
  onError: (error: unknown, what: string) => void;
  /** Abuse limits on connections and their operations (src/security/abuse.ts); none when absent. */
  gate?: ConnectionGate;
}

/**
 * Everything the server keeps for one socket. One object with no closures:
 * idle connections are the product's unit of cost (see `npm run bench:memory`).
 */
export class Connection<S extends ProtocolSocket = ProtocolSocket> {
  alive = true;
  initReceived = false;
  /** Set once the connection is acknowledged; its viewer is the connection's. */
  context: Context | undefined;
  /** The user one of whose connection slots it holds (src/security/abuse.ts). */
  gatedUser: string | undefined;
  /** Most connections carry one operation: a Map only from the second on. An id lives in one place only. */
  private onlyId: string | undefined;
  private onlyOperation: Operation | undefined;
  private more: Map<string, Operation> | undefined;

  constructor(
    readonly socket: S,
    readonly connectionId: string,
    /** `performance.now()` at the upgrade, in whole ms: a small integer, stored in the object itself. */
    readonly openedAt: number,
    /** The byte stream under the socket, when the adapter has one: batches of frames are corked into one write. */
    readonly stream?: Corkable,
  ) {}

  /** The authenticated user, once acknowledged. */
  get viewer(): Viewer | undefined {
    return this.context?.viewer ?? undefined;
  }

  /** Operations in flight. */
  get size(): number {
    return (this.onlyId === undefined ? 0 : 1) + (this.more?.size ?? 0);
  }

  get(id: string): Operation | undefined {
    if (this.onlyId === id) return this.onlyOperation;
    return this.more?.get(id);
  }

  set(id: string, operation: Operation): void {
    if (this.onlyId === id) this.onlyOperation = operation;
    else if (this.more?.has(id)) this.more.set(id, operation);
    else if (this.onlyId === undefined) {
      this.onlyId = id;
      this.onlyOperation = operation;
    } else (this.more ??= new Map()).set(id, operation);
  }

  delete(id: string): void {
    if (this.onlyId === id) this.onlyId = this.onlyOperation = undefined;
    else this.more?.delete(id);
  }

  /** Ends every operation (the socket closed); returns them for cleanup. */
  takeAll(): Operation[] {
    const all: Operation[] = this.onlyOperation ? [this.onlyOperation] : [];
    if (this.more) all.push(...this.more.values());
    this.onlyId = this.onlyOperation = undefined;
    this.more = undefined;
    return all;
  }

  send(message: object): void {
    if (this.socket.readyState === OPEN) this.socket.send(JSON.stringify(message));
  }
}

/**
 * One operation of a connection, from its subscribe message on; for a
 * subscription, also its end of the socket (one object, not a handle and a
 * sink: idle subscriptions are the product's unit of cost). Compared by
 * identity: a client may complete an id and reuse it while the first start
 * is still running (authorization takes a database read).
 *
 * As a sink: pre-rendered `next` frames written around the shared payload,
 * the slow-consumer bound, and the protocol's `error` / `complete` when the
 * stream ends by itself.
 */
class Operation extends RenderingSink<ProtocolOptions> implements RunningSubscription {
  /** Set once the subscription started. */
  running: RunningSubscription | undefined;
  cancelled = false;
  /** The id as JSON, only when it needed escaping (a plain id is written as is). */
  private readonly escapedId: string | undefined;

  constructor(
    private readonly connection: Connection,
    private readonly id: string,
    context: Context,
    protocol: ProtocolOptions,
  ) {
    // The renderer is set when the subscription starts (`subscribe` below); queries never render here.
    super(undefined as unknown as SharedRenderer, context, protocol);
    const quoted = JSON.stringify(id);
    this.escapedId = quoted.length === id.length + 2 ? undefined : quoted;
  }

  cancel(): void {
    this.cancelled = true;
    this.running?.cancel();
  }

  protected write(payload: string): void {
    const socket = this.connection.socket;
    if (socket.readyState !== OPEN) return;
    if (socket.bufferedAmount > this.services.maxBufferedBytes) {
      // It cannot keep up; holding an ever-growing backlog would hurt every
      // other socket. The client reconnects and resumes from its cursor.
      this.services.observer.slowConsumerCut('ws');
      socket.close(CloseReason.SlowConsumer, 'Slow consumer: reconnect and resume from your cursor');
      return;
    }
    const escaped = this.escapedId;
    socket.send(escaped === undefined ? '{"id":"' + this.id + '","type":"next","payload":' + payload + '}' : '{"id":' + escaped + ',"type":"next","payload":' + payload + '}');
  }

  cork(): void {
    this.connection.stream?.cork();
  }

  uncork(): void {
    this.connection.stream?.uncork();
  }

  protected finish(error: GraphQLError | undefined): void {
    if (this.connection.get(this.id) !== this) return; // the client completed it first
    this.connection.delete(this.id);
    if (error) this.connection.send({ id: this.id, type: MessageType.Error, payload: [this.services.maskError(error).toJSON()] });
    else this.connection.send({ id: this.id, type: MessageType.Complete });
  }
}

function tokenFrom(payload: Record<string, unknown> | null | undefined): string | undefined {
  const raw = payload?.authorization ?? payload?.Authorization ?? payload?.token;
  if (typeof raw !== 'string') return undefined;
  return raw.replace(/^Bearer\s+/i, '').trim() || undefined;
}

const codesOf = (errors: readonly GraphQLError[] | undefined) => errors?.map((error) => String(error.extensions?.code ?? 'UNKNOWN'));

/**
 * The graphql-transport-ws protocol, server side
 * (https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md), reusing
 * graphql-ws's message validation, names and close codes, over any socket
 * (the `ws` adapter is ws-server.ts).
 *
 * We run our own loop rather than graphql-ws's `makeServer` because of what it
 * keeps per connection and per subscription (closures, a suspended async
 * function and its promises for every subscription): memory per idle
 * connection is a product target. Here a connection is one `Connection`
 * object and a subscription is its stream plus one sink. graphql-ws's
 * client, used throughout the tests, is the conformance check.
 */
export function createProtocol(options: ProtocolOptions) {
  const { operations } = options;

  async function init(connection: Connection, payload: Record<string, unknown> | null | undefined): Promise<void> {
    if (connection.initReceived) {
      connection.socket.close(CloseReason.TooManyInitialisationRequests, 'Too many initialisation requests');
      return;
    }
    connection.initReceived = true;
    const token = tokenFrom(payload);
    let viewer: Viewer;
    try {
      if (!token) throw new Error('no token');
      viewer = await options.auth.verify(token, { remember: false });
    } catch {
      connection.socket.close(CloseReason.Forbidden, 'Forbidden');
      return;
    }
    if (options.gate) {
      try {
        await options.gate.open(viewer.id, connection.connectionId);
      } catch (error) {
        // 1013 Try Again Later: graphql-ws clients retry it; the reason carries the hint.
        const retryAfterMs = retryAfterMsOf(error);
        if (retryAfterMs === undefined) throw error;
        connection.socket.close(CloseReason.TryAgainLater, `Rate limited: retry after ${retryAfterMs} ms`);
        return;
      }
      if (connection.socket.readyState !== OPEN) {
        // Closed while we asked (its close ran already): free the slot now.
        options.gate.close(viewer.id, connection.connectionId);
        return;
      }
      connection.gatedUser = viewer.id;
    }
    await options.onViewer(viewer);
    if (connection.socket.readyState !== OPEN) return; // closed while we verified it
    connection.context = options.createContext(viewer);
    // Presence is a product feature: it never holds up or refuses a connection.
    options.presence.connected(viewer.id, connection.connectionId).catch((error) => options.onError(error, 'presence'));
    connection.send({ type: MessageType.ConnectionAck });
  }

  async function subscribe(connection: Connection, message: Extract<Message, { type: MessageType.Subscribe }>): Promise<void> {
    const { id, payload } = message;
    const context = connection.context;
    if (!context) {
      connection.socket.close(CloseReason.Unauthorized, 'Unauthorized');
      return;
    }
    if (connection.get(id) !== undefined) {
      connection.socket.close(CloseReason.SubscriberAlreadyExists, `Subscriber for ${id} already exists`);
      return;
    }
    if (options.gate && connection.size >= options.gate.maxOperationsPerConnection) {
      const limit = options.gate.maxOperationsPerConnection;
      const error = new ChatError(ErrorCode.RATE_LIMITED, `Too many operations on this connection (at most ${limit}); complete one first`, { retryAfterMs: 1000, limit });
      connection.send({ id, type: MessageType.Error, payload: [error.toJSON()] });
      return;
    }
    const handle = new Operation(connection, id, context, options);
    connection.set(id, handle);
    const prepared = operations.prepare(payload);
    if (Array.isArray(prepared)) {
      connection.delete(id);
      connection.send({ id, type: MessageType.Error, payload: (prepared as readonly GraphQLError[]).map((error) => options.maskError(error).toJSON()) });
      return;
    }
    const operation = prepared as Exclude<typeof prepared, readonly GraphQLError[]>;
    const ids = { connectionId: connection.connectionId, operationId: id };

    if (operation.kind !== 'subscription') {
      const started = performance.now();
      const result = await operations.execute(operation, context);
      options.onOperation?.(ids, operation.document, operation.operationName, (performance.now() - started) / 1000, codesOf(result.errors));
      if (connection.get(id) !== handle) return; // completed by the client meanwhile
      connection.delete(id);
      connection.send({ id, type: MessageType.Next, payload: result });
      connection.send({ id, type: MessageType.Complete });
      return;
    }

    options.onSubscriptionStart?.(ids, operation.document, operation.operationName);
    const started = await operations.subscribe(operation, context, (renderer) => {
      handle.renderer = renderer;
      return handle;
    });
    if (!('cancel' in started)) {
      // It could not start: its errors as a result, then complete (as graphql-ws does).
      if (connection.get(id) !== handle) return;
      connection.delete(id);
      connection.send({ id, type: MessageType.Next, payload: started });
      connection.send({ id, type: MessageType.Complete });
      return;
    }
    handle.running = started;
    // The client completed it (or the socket closed) while it started.
    if (handle.cancelled) started.cancel();
  }

  return {
    /** Handles one text frame from a client. */
    async receive(connection: Connection, data: string): Promise<void> {
      let message: Message;
      try {
        message = parseMessage(data);
      } catch {
        connection.socket.close(CloseReason.BadRequest, 'Invalid message received');
        return;
      }
      switch (message.type) {
        case MessageType.ConnectionInit:
          return init(connection, message.payload as Record<string, unknown> | undefined);
        case MessageType.Ping:
          connection.send(message.payload ? { type: MessageType.Pong, payload: message.payload } : { type: MessageType.Pong });
          return;
        case MessageType.Pong:
          return;
        case MessageType.Subscribe:
          return subscribe(connection, message);
        case MessageType.Complete: {
          const operation = connection.get(message.id);
          connection.delete(message.id);
          operation?.cancel();
          return;
        }
        default:
          connection.socket.close(CloseReason.BadRequest, `Unexpected message of type ${message.type}`);
      }
    },

    /** The socket closed: end its operations and its presence. */
    closed(connection: Connection): void {
      for (const operation of connection.takeAll()) operation.cancel();
      if (connection.gatedUser !== undefined) options.gate?.close(connection.gatedUser, connection.connectionId);
      if (connection.viewer) {
        options.presence.disconnected(connection.viewer.id, connection.connectionId).catch((error) => options.onError(error, 'presence'));
      }
    },

    /** Whether the client asked for our subprotocol (graphql-ws closes with 4406 otherwise). */
    acceptable(protocol: string): boolean {
      return protocol === GRAPHQL_TRANSPORT_WS_PROTOCOL;
    },
  };
}

export type Protocol = ReturnType<typeof createProtocol>;
