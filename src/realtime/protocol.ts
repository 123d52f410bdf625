import {
  createSourceEventStream,
  execute,
  getOperationAST,
  GraphQLError,
  parse,
  validate,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  type GraphQLSchema,
} from 'graphql';
import { GRAPHQL_TRANSPORT_WS_PROTOCOL, MessageType, parseMessage, type Message } from 'graphql-ws';
import type { WebSocket } from 'ws';
import type { Auth, Viewer } from '../auth.js';
import type { Context, SocketTransport } from '../context.js';
import { CloseReason } from './close-codes.js';
import type { Presence } from './presence.js';
import { RoutedStream } from './streams.js';

/** Reports each finished query or mutation (logs, metrics); `errors` are the codes returned. */
export type OperationListener = (
  ids: { connectionId: string; operationId: string },
  document: DocumentNode,
  operationName: string | null | undefined,
  seconds: number,
  errors: string[] | undefined,
) => void;

export interface ProtocolOptions {
  schema: GraphQLSchema;
  /** The same context factory HTTP requests use (one context per connection). */
  createContext: (viewer: Viewer) => Context;
  /** The same error masking HTTP responses get. */
  maskError: (error: GraphQLError) => GraphQLError;
  auth: Auth;
  /** Called once per accepted connection (creates the user on first use). */
  onViewer: (viewer: Viewer) => Promise<void>;
  presence: Presence;
  onOperation?: OperationListener;
  onSubscriptionStart?: (ids: { connectionId: string; operationId: string }, document: DocumentNode, operationName: string | null | undefined) => void;
  onError: (error: unknown, what: string) => void;
}

/**
 * An operation between its subscribe message and its stream existing
 * (authorization runs meanwhile). One per start, compared by identity: a
 * client may complete an id and reuse it while the first start is running.
 */
class Starting {}
type Operation = RoutedStream | Starting;

/** Longest query text accepted over the socket; bounds the document and renderer caches per entry. */
const MAX_QUERY_LENGTH = 16 * 1024;

/**
 * Everything the server keeps for one socket. One object with no closures:
 * idle connections are the product's unit of cost (see `npm run bench:memory`).
 */
export class Connection {
  alive = true;
  initReceived = false;
  viewer: Viewer | undefined;
  context: Context | undefined;
  /** Most connections carry one subscription: a Map only from the second on. */
  private onlyId: string | undefined;
  private onlyOperation: Operation | undefined;
  private more: Map<string, Operation> | undefined;

  constructor(
    readonly socket: WebSocket,
    readonly connectionId: string,
    readonly openedAt: number,
  ) {}

  get(id: string): Operation | undefined {
    if (this.onlyId === id) return this.onlyOperation;
    return this.more?.get(id);
  }

  set(id: string, operation: Operation): void {
    if (this.onlyId === undefined || this.onlyId === id) {
      this.onlyId = id;
      this.onlyOperation = operation;
    } else {
      (this.more ??= new Map()).set(id, operation);
    }
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
    if (this.socket.readyState === this.socket.OPEN) this.socket.send(JSON.stringify(message));
  }
}

function tokenFrom(payload: Record<string, unknown> | null | undefined): string | undefined {
  const raw = payload?.authorization ?? payload?.Authorization ?? payload?.token;
  if (typeof raw !== 'string') return undefined;
  return raw.replace(/^Bearer\s+/i, '').trim() || undefined;
}

/** Parsed and validated documents by query text: thousands of clients send the same few. */
function createDocumentCache(schema: GraphQLSchema, max = 1000) {
  const cache = new Map<string, DocumentNode | readonly GraphQLError[]>();
  return (query: string): DocumentNode | readonly GraphQLError[] => {
    let entry = cache.get(query);
    if (entry === undefined) {
      try {
        const document = parse(query, { maxTokens: 5000 });
        const errors = validate(schema, document);
        entry = errors.length > 0 ? errors : document;
      } catch (error) {
        entry = [error instanceof GraphQLError ? error : new GraphQLError(String(error))];
      }
      if (cache.size >= max) cache.delete(cache.keys().next().value!);
      cache.set(query, entry);
    }
    return entry;
  };
}

const codesOf = (result: ExecutionResult) => result.errors?.map((error) => String(error.extensions?.code ?? 'UNKNOWN'));

/**
 * The graphql-transport-ws protocol, server side
 * (https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md), reusing
 * graphql-ws's message validation, names and close codes.
 *
 * We run our own loop rather than graphql-ws's `makeServer` because of what it
 * keeps per connection and per subscription (closures, a suspended async
 * function and its promises for every subscription, the subscribe message
 * and arguments for its whole life): memory per idle connection is a product
 * target. Here a connection is one `Connection` object and a subscription is
 * its routed stream, which writes pre-rendered frames itself and reports its
 * own end through `onEnd`. graphql-ws's client, used throughout the tests, is
 * the conformance check.
 */
export function createProtocol(options: ProtocolOptions) {
  const { schema } = options;
  const documents = createDocumentCache(schema);
  const mask = (result: ExecutionResult): ExecutionResult =>
    result.errors ? { ...result, errors: result.errors.map((error) => options.maskError(error)) } : result;

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
    await options.onViewer(viewer);
    await options.presence.connected(viewer.id, connection.connectionId);
    if (connection.socket.readyState !== connection.socket.OPEN) {
      // It closed while we verified and registered it; close() saw no viewer, so undo here.
      await options.presence.disconnected(viewer.id, connection.connectionId);
      return;
    }
    connection.viewer = viewer;
    connection.context = options.createContext(viewer);
    connection.send({ type: MessageType.ConnectionAck });
  }

  async function subscribe(connection: Connection, message: Extract<Message, { type: MessageType.Subscribe }>): Promise<void> {
    const { id, payload } = message;
    if (!connection.context) {
      connection.socket.close(CloseReason.Unauthorized, 'Unauthorized');
      return;
    }
    if (connection.get(id) !== undefined) {
      connection.socket.close(CloseReason.SubscriberAlreadyExists, `Subscriber for ${id} already exists`);
      return;
    }
    const starting = new Starting();
    connection.set(id, starting);
    const fail = (errors: readonly GraphQLError[]) => {
      if (connection.get(id) !== starting) return;
      connection.delete(id);
      connection.send({ id, type: MessageType.Error, payload: errors.map((error) => options.maskError(error).toJSON()) });
    };
    if (payload.query.length > MAX_QUERY_LENGTH) {
      return fail([new GraphQLError(`Query too long (over ${MAX_QUERY_LENGTH} characters)`, { extensions: { code: 'BAD_USER_INPUT' } })]);
    }
    const document = documents(payload.query);
    if (Array.isArray(document)) return fail(document as readonly GraphQLError[]);
    const operation = getOperationAST(document as DocumentNode, payload.operationName);
    if (!operation) return fail([new GraphQLError('Unable to identify operation')]);

    const ids = { connectionId: connection.connectionId, operationId: id };
    const variables = payload.variables ?? undefined;
    const transport: SocketTransport = { socket: connection.socket, id, connectionId: connection.connectionId, variables };
    const args: ExecutionArgs = {
      schema,
      document: document as DocumentNode,
      operationName: payload.operationName,
      variableValues: variables,
      contextValue: { ...connection.context, transport } satisfies Context,
    };

    if (operation.operation !== 'subscription') {
      const started = performance.now();
      const result = mask(await execute(args));
      options.onOperation?.(ids, args.document, args.operationName, (performance.now() - started) / 1000, codesOf(result));
      if (connection.get(id) !== starting) return; // completed by the client meanwhile
      connection.delete(id);
      connection.send({ id, type: MessageType.Next, payload: result });
      connection.send({ id, type: MessageType.Complete });
      return;
    }

    options.onSubscriptionStart?.(ids, args.document, args.operationName);
    // What graphql-js's subscribe does first (argument coercion, the root
    // field's subscribe resolver, which authorizes and starts the stream).
    // Its per-event execute wrapper is not needed: a routed stream writes
    // pre-rendered frames to the socket itself.
    const source = await createSourceEventStream(args);
    // The stream took what it needs from the transport; do not keep it alive through the context.
    (args.contextValue as { transport?: unknown }).transport = undefined;
    if (!(source instanceof RoutedStream)) {
      if (Symbol.asyncIterator in source) throw new Error('Every subscription must be routed (return a RoutedStream)');
      if (connection.get(id) !== starting) return;
      connection.delete(id);
      // As graphql-ws does for a subscription that cannot start: its errors as a result, then complete.
      connection.send({ id, type: MessageType.Next, payload: mask(source as ExecutionResult) });
      connection.send({ id, type: MessageType.Complete });
      return;
    }
    if (connection.get(id) !== starting) {
      void source.return(); // the client completed it (or the socket closed) while it started
      return;
    }
    connection.set(id, source);
    source.onEnd = (error) => {
      if (connection.get(id) !== source) return;
      connection.delete(id);
      if (error) connection.send({ id, type: MessageType.Error, payload: [options.maskError(error).toJSON()] });
      else connection.send({ id, type: MessageType.Complete });
    };
    // It may already have ended while starting (before it could be told).
    if (source.closed) source.onEnd(undefined);
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
          if (operation instanceof RoutedStream) await operation.return();
          return;
        }
        default:
          connection.socket.close(CloseReason.BadRequest, `Unexpected message of type ${message.type}`);
      }
    },

    /** The socket closed: end its operations and its presence. */
    async closed(connection: Connection): Promise<void> {
      for (const operation of connection.takeAll()) if (operation instanceof RoutedStream) await operation.return();
      if (connection.viewer) await options.presence.disconnected(connection.viewer.id, connection.connectionId);
    },

    /** Whether the client asked for our subprotocol (graphql-ws closes with 4406 otherwise). */
    acceptable(socket: WebSocket): boolean {
      return socket.protocol === GRAPHQL_TRANSPORT_WS_PROTOCOL;
    },
  };
}

export type Protocol = ReturnType<typeof createProtocol>;
