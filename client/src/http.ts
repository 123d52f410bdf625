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
   * token (when the session has `getToken`).
   */
  execute<TData, TVariables extends AnyVariables>(document: TypedDocumentNode<TData, TVariables>, variables: TVariables): Promise<TData>;
}

export interface HttpTransportOptions {
  url: string;
  tokens: TokenSource;
  fetch?: typeof fetch;
  /** Aborts every request in flight (the session closing). */
  signal?: AbortSignal;
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

type OperationKind = 'query' | 'mutation' | 'subscription';

function kindOf(document: TypedDocumentNode<unknown, never>): OperationKind {
  for (const definition of document.definitions) {
    if (definition.kind === 'OperationDefinition') return definition.operation;
  }
  throw new ChatError(ErrorCode.BAD_USER_INPUT, 'The document has no operation');
}

function errorOf(error: CombinedError, signal: AbortSignal | undefined): ChatError {
  const first = error.graphQLErrors[0];
  if (first) return fromGraphQLError(first);
  if (signal?.aborted) return new ChatError(ErrorCode.CLOSED, 'The session was closed', { cause: error.networkError });
  return new ChatError(ErrorCode.NETWORK_ERROR, error.networkError?.message ?? error.message, { cause: error.networkError ?? error });
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

  const authorizedFetch: typeof fetch = async (input, init) => {
    const headers = new Headers(init?.headers);
    headers.set('authorization', `Bearer ${await tokens.current()}`);
    const linked = linkSignals(init?.signal ?? undefined, signal);
    try {
      const body = options.trustedDocuments ? withDocumentId(init?.body) : init?.body;
      return await baseFetch(input, { ...init, body, headers, signal: linked.signal });
    } finally {
      linked.unlink();
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

  async function once<TData, TVariables extends AnyVariables>(document: TypedDocumentNode<TData, TVariables>, variables: TVariables): Promise<TData> {
    if (signal?.aborted) throw new ChatError(ErrorCode.CLOSED, 'The session was closed');
    const kind = kindOf(document as TypedDocumentNode<unknown, never>);
    if (kind === 'subscription') throw new ChatError(ErrorCode.BAD_USER_INPUT, 'Subscriptions run over the WebSocket, not HTTP');
    const source = kind === 'query' ? client.query(document, variables) : client.mutation(document, variables);
    const result = await source.toPromise();
    if (result.error) throw errorOf(result.error, signal);
    if (result.data === undefined || result.data === null) throw new ChatError(ErrorCode.INTERNAL_SERVER_ERROR, 'The server answered without data');
    return result.data;
  }

  return {
    async execute(document, variables) {
      try {
        return await once(document, variables);
      } catch (error) {
        // The token expired between two requests: one retry with a fresh
        // token. Only one, so a token the server will never accept surfaces
        // as UNAUTHENTICATED instead of looping.
        if (!(error instanceof ChatError) || error.code !== ErrorCode.UNAUTHENTICATED || !tokens.canRefresh) throw error;
        await tokens.refresh();
        return once(document, variables);
      }
    },
  };
}

/**
 * A signal that aborts when either does, and a way to stop listening (the
 * session's signal outlives thousands of requests). AbortSignal.any is not in
 * every runtime we support.
 */
function linkSignals(a: AbortSignal | undefined, b: AbortSignal | undefined): { signal: AbortSignal | undefined; unlink: () => void } {
  if (!a || !b) return { signal: a ?? b, unlink: () => {} };
  const controller = new AbortController();
  if (a.aborted || b.aborted) {
    controller.abort((a.aborted ? a : b).reason);
    return { signal: controller.signal, unlink: () => {} };
  }
  const onA = () => controller.abort(a.reason);
  const onB = () => controller.abort(b.reason);
  a.addEventListener('abort', onA, { once: true });
  b.addEventListener('abort', onB, { once: true });
  return {
    signal: controller.signal,
    unlink: () => {
      a.removeEventListener('abort', onA);
      b.removeEventListener('abort', onB);
    },
  };
}
