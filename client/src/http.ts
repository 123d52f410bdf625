import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { Client, fetchExchange, type AnyVariables, type CombinedError } from '@urql/core';
import { ChatError, ErrorCode, fromGraphQLError } from './errors.js';
import type { TokenSource } from './tokens.js';
import { documentIdOf } from './trusted-documents.js';

/** Runs typed queries and mutations over HTTP. */
export interface HttpTransport {
  /**
   * Runs one operation and resolves with its data; rejects with a
   * {@link ChatError}. An UNAUTHENTICATED answer is retried once with a fresh
   * token (when the session has `getToken`). No answer within the request
   * timeout rejects with NETWORK_ERROR.
   */
  execute<TData, TVariables extends AnyVariables>(document: TypedDocumentNode<TData, TVariables>, variables: TVariables, request?: RequestOptions): Promise<TData>;
}

/** Per-request choices of {@link HttpTransport.execute}. */
export interface RequestOptions {
  /**
   * Send this request on a new connection instead of a pooled keep-alive one
   * (for a retry after a timeout or network failure: behind a load balancer
   * that balances connections, a pooled one may be pinned to the instance
   * that stopped answering). See {@link freshConnection}.
   */
  freshConnection?: boolean;
}

export interface HttpTransportOptions {
  url: string;
  tokens: TokenSource;
  fetch?: typeof fetch;
  /** Aborts every request in flight (the session closing). */
  signal?: AbortSignal;
  /**
   * A request with no complete answer after this many milliseconds is
   * aborted and fails with NETWORK_ERROR (sends are then retried, with the
   * same clientMessageId). 0 turns the timeout off. Default 10 000.
   */
  requestTimeoutMs?: number;
  /** Send the SDK's operations as trusted document ids instead of their text. */
  trustedDocuments?: boolean;
}

/** The request body with a trusted document's id in place of its text, when it is one of the SDK's. */
function withDocumentId(body: BodyInit | null | undefined): BodyInit | null | undefined {
  if (typeof body !== 'string') return body;
  const request = JSON.parse(body) as { query?: string; documentId?: string };
  const documentId = typeof request.query === 'string' ? documentIdOf(request.query) : undefined;
  if (documentId === undefined) return body;
  const { query: _query, ...rest } = request;
  return JSON.stringify({ ...rest, documentId });
}

export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

/**
 * How the request options travel from `execute` through urql (which spreads
 * an operation's `fetchOptions` into the fetch init) to our fetch wrapper,
 * which takes them out again before calling the real fetch.
 */
const REQUEST = '__chatRequest';
interface RequestState {
  /** Fires when the request timed out. */
  signal: AbortSignal;
  fresh: boolean;
}

type OperationKind = 'query' | 'mutation' | 'subscription';

function kindOf(document: TypedDocumentNode<unknown, never>): OperationKind {
  for (const definition of document.definitions) {
    if (definition.kind === 'OperationDefinition') return definition.operation;
  }
  throw new ChatError(ErrorCode.BAD_USER_INPUT, 'The document has no operation');
}

function errorOf(error: CombinedError, signal: AbortSignal | undefined, timeout: AbortSignal): ChatError {
  const first = error.graphQLErrors[0];
  if (first) return fromGraphQLError(first);
  if (signal?.aborted) return new ChatError(ErrorCode.CLOSED, 'The session was closed', { cause: error.networkError });
  if (timeout.aborted && timeout.reason instanceof ChatError) return new ChatError(timeout.reason.code, timeout.reason.message, { cause: error.networkError });
  return new ChatError(ErrorCode.NETWORK_ERROR, error.networkError?.message ?? error.message, { cause: error.networkError ?? error });
}

/** Node's fetch (undici) keeps its default dispatcher here; the npm `undici` package uses the same slot. */
const UNDICI_GLOBAL_DISPATCHER = Symbol.for('undici.globalDispatcher.1');

interface OneShotDispatcher {
  close(): Promise<void>;
  destroy(): Promise<void>;
}

/**
 * Extra fetch init that makes one request use a connection of its own, and a
 * `release` to call once the request is over.
 *
 * A `connection: close` header alone does not do it: undici still sends the
 * request on an idle pooled socket (and only closes that socket afterwards).
 * So where fetch is undici's (Node), the request gets a dispatcher of its
 * own: a new Agent of the same class as Node's default one, closed once the
 * response has been read. Browsers ignore both the header (a forbidden header
 * name) and `dispatcher`, and pick connections themselves; a custom global
 * dispatcher (a proxy agent, say) is left alone and only the header is sent.
 */
export function freshConnection(): { init: Record<string, unknown>; release(failed: boolean): void } {
  const current = (globalThis as Record<symbol, unknown>)[UNDICI_GLOBAL_DISPATCHER] as { constructor?: unknown } | undefined;
  const Agent = current?.constructor;
  if (typeof Agent !== 'function' || Agent.name !== 'Agent') return { init: {}, release: () => {} };
  const dispatcher = new (Agent as new (options: Record<string, unknown>) => OneShotDispatcher)({ connections: 1 });
  return {
    init: { dispatcher },
    // close() lets the response body finish, then ends the socket; destroy() ends it now.
    release: (failed) => void (failed ? dispatcher.destroy() : dispatcher.close()).catch(() => {}),
  };
}

/**
 * One urql client (fetch exchange only: a chat session wants every answer
 * from the server, never from a document cache) with the bearer token added
 * at request time. The header is set in a fetch wrapper rather than in
 * `fetchOptions` because tokens come from an async `getToken`.
 */
export function createHttpTransport(options: HttpTransportOptions): HttpTransport {
  const baseFetch = options.fetch ?? globalThis.fetch;
  if (typeof baseFetch !== 'function') throw new ChatError(ErrorCode.BAD_USER_INPUT, 'No fetch implementation: pass `fetch`', { field: 'fetch' });
  const { tokens, signal } = options;
  const timeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs < 0) throw new ChatError(ErrorCode.BAD_USER_INPUT, 'requestTimeoutMs must be 0 or more', { field: 'requestTimeoutMs' });

  const authorizedFetch: typeof fetch = async (input, init) => {
    const { [REQUEST]: request, ...rest } = (init ?? {}) as RequestInit & { [REQUEST]?: RequestState };
    const headers = new Headers(rest.headers);
    headers.set('authorization', `Bearer ${await tokens.current()}`);
    const fresh = request?.fresh ? freshConnection() : undefined;
    // Whatever happens to this attempt, its connection is not worth keeping.
    if (request?.fresh) headers.set('connection', 'close');
    const linked = linkSignals([rest.signal ?? undefined, signal, request?.signal]);
    let failed = true;
    try {
      const body = options.trustedDocuments ? withDocumentId(rest.body) : rest.body;
      const response = await baseFetch(input, { ...rest, body, ...fresh?.init, headers, signal: linked.signal });
      failed = false;
      return response;
    } finally {
      linked.unlink();
      fresh?.release(failed);
    }
  };

  const client = new Client({
    url: options.url,
    exchanges: [fetchExchange],
    fetch: authorizedFetch,
    requestPolicy: 'network-only',
    // POST for everything: queries carry message bodies and cursors, which
    // do not belong in URLs and logs.
    preferGetMethod: false,
  });

  async function once<TData, TVariables extends AnyVariables>(document: TypedDocumentNode<TData, TVariables>, variables: TVariables, request: RequestOptions): Promise<TData> {
    if (signal?.aborted) throw new ChatError(ErrorCode.CLOSED, 'The session was closed');
    const kind = kindOf(document as TypedDocumentNode<unknown, never>);
    if (kind === 'subscription') throw new ChatError(ErrorCode.BAD_USER_INPUT, 'Subscriptions run over the WebSocket, not HTTP');
    // The timeout covers the whole answer (headers and body): an instance
    // frozen mid-response must not hold the caller either. Aborting also
    // closes the connection, so the retry cannot queue behind it.
    const timeout = new AbortController();
    const timer = timeoutMs > 0 ? setTimeout(() => timeout.abort(new ChatError(ErrorCode.NETWORK_ERROR, `No answer within ${timeoutMs} ms`)), timeoutMs) : undefined;
    const state: RequestState = { signal: timeout.signal, fresh: request.freshConnection === true };
    const context = { fetchOptions: { [REQUEST]: state } as RequestInit };
    try {
      const source = kind === 'query' ? client.query(document, variables, context) : client.mutation(document, variables, context);
      const result = await source.toPromise();
      if (result.error) throw errorOf(result.error, signal, timeout.signal);
      if (result.data === undefined || result.data === null) throw new ChatError(ErrorCode.INTERNAL_SERVER_ERROR, 'The server answered without data');
      return result.data;
    } finally {
      clearTimeout(timer);
    }
  }

  return {
    async execute(document, variables, request = {}) {
      try {
        return await once(document, variables, request);
      } catch (error) {
        // The token expired between two requests: one retry with a fresh
        // token. Only one, so a token the server will never accept surfaces
        // as UNAUTHENTICATED instead of looping.
        if (!(error instanceof ChatError) || error.code !== ErrorCode.UNAUTHENTICATED || !tokens.canRefresh) throw error;
        await tokens.refresh();
        return once(document, variables, request);
      }
    },
  };
}

/**
 * A signal that aborts when any of them does, and a way to stop listening
 * (the session's signal outlives thousands of requests). AbortSignal.any
 * where the runtime has it (Node 20.3+, current browsers): it holds the
 * sources weakly, so many requests in flight add no listeners to the
 * session's signal (Node warns past ten); listeners elsewhere.
 */
function linkSignals(candidates: (AbortSignal | undefined)[]): { signal: AbortSignal | undefined; unlink: () => void } {
  const signals = candidates.filter((s): s is AbortSignal => s !== undefined);
  if (signals.length <= 1) return { signal: signals[0], unlink: () => {} };
  const any = (AbortSignal as { any?: (signals: AbortSignal[]) => AbortSignal }).any;
  if (typeof any === 'function') return { signal: any.call(AbortSignal, signals), unlink: () => {} };
  const controller = new AbortController();
  const aborted = signals.find((s) => s.aborted);
  if (aborted) {
    controller.abort(aborted.reason);
    return { signal: controller.signal, unlink: () => {} };
  }
  const listeners = signals.map((s) => {
    const onAbort = () => controller.abort(s.reason);
    s.addEventListener('abort', onAbort, { once: true });
    return () => s.removeEventListener('abort', onAbort);
  });
  return { signal: controller.signal, unlink: () => listeners.forEach((remove) => remove()) };
}
