import { GraphQLError } from 'graphql';
import { isDatabaseUnavailable } from './db/errors.js';

/**
 * The closed set of `extensions.code` values this API returns, on every
 * transport (HTTP, Server-Sent Events, WebSocket). Clients may switch on
 * these; adding one is a change to the public contract (README, "Errors";
 * the SDK exports the same list from client/src/errors.ts).
 */
export const ErrorCode = {
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  FORBIDDEN: 'FORBIDDEN',
  NOT_FOUND: 'NOT_FOUND',
  /** An argument's value is not acceptable; `extensions.field` names it. */
  BAD_USER_INPUT: 'BAD_USER_INPUT',
  /** A `clientMessageId` already used for different content; `extensions.field` names it. */
  IDEMPOTENCY_CONFLICT: 'IDEMPOTENCY_CONFLICT',
  /**
   * A change whose fencing token (`fence`) is at or below one its writer already used in this
   * conversation: a delayed attempt that a later one overtook. It changed nothing.
   */
  SUPERSEDED: 'SUPERSEDED',
  /** Too many of something; `extensions.retryAfterMs` says when to try again. */
  RATE_LIMITED: 'RATE_LIMITED',
  /** The request is not a GraphQL request this server accepts (malformed body or frame, batch, method, media type). */
  BAD_REQUEST: 'BAD_REQUEST',
  /** The document is not GraphQL. */
  GRAPHQL_PARSE_FAILED: 'GRAPHQL_PARSE_FAILED',
  /** The document does not fit the schema. */
  GRAPHQL_VALIDATION_FAILED: 'GRAPHQL_VALIDATION_FAILED',
  /** Each operation limit has its own code; `extensions.limit` is the limit, `extensions.found` what was found (docs/architecture.md, "Operation limits"). */
  SIZE_LIMIT_EXCEEDED: 'SIZE_LIMIT_EXCEEDED',
  TOKEN_LIMIT_EXCEEDED: 'TOKEN_LIMIT_EXCEEDED',
  DEPTH_LIMIT_EXCEEDED: 'DEPTH_LIMIT_EXCEEDED',
  ALIAS_LIMIT_EXCEEDED: 'ALIAS_LIMIT_EXCEEDED',
  DIRECTIVE_LIMIT_EXCEEDED: 'DIRECTIVE_LIMIT_EXCEEDED',
  COST_LIMIT_EXCEEDED: 'COST_LIMIT_EXCEEDED',
  /** The same field (response name) selected more than 10 times in one selection set. */
  FIELD_LIMIT_EXCEEDED: 'FIELD_LIMIT_EXCEEDED',
  /** A `documentId` this server does not know. */
  PERSISTED_DOCUMENT_NOT_FOUND: 'PERSISTED_DOCUMENT_NOT_FOUND',
  /** This server runs trusted documents only (TRUSTED_DOCUMENTS_ONLY) and the request sent other text. */
  PERSISTED_DOCUMENT_REQUIRED: 'PERSISTED_DOCUMENT_REQUIRED',
  /**
   * Not now: the instance is shutting down (another answers through the load
   * balancer), or the database cannot be reached or written (a restart, a
   * failover). Try again after `retryAfterMs` when given; a send retried with
   * the same clientMessageId is stored once.
   */
  SERVICE_UNAVAILABLE: 'SERVICE_UNAVAILABLE',
  INTERNAL_SERVER_ERROR: 'INTERNAL_SERVER_ERROR',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const CODES = new Set<string>(Object.values(ErrorCode));

/** Whether `code` is one of ours. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && CODES.has(code);
}

/** A GraphQLError carrying one of our codes; anything else is masked before it leaves the server. */
export class ChatError extends GraphQLError {
  constructor(code: ErrorCode, message: string, extensions: Record<string, unknown> = {}) {
    super(message, { extensions: { ...extensions, code } });
  }
}

export const unauthenticated = (message = 'A valid bearer token is required') =>
  new ChatError(ErrorCode.UNAUTHENTICATED, message);
export const forbidden = (message: string) => new ChatError(ErrorCode.FORBIDDEN, message);
export const notFound = (message: string) => new ChatError(ErrorCode.NOT_FOUND, message);
export const badInput = (message: string, field?: string) =>
  new ChatError(ErrorCode.BAD_USER_INPUT, message, field ? { field } : {});
export const rateLimited = (message: string, retryAfterMs: number) =>
  new ChatError(ErrorCode.RATE_LIMITED, message, { retryAfterMs });
export const badRequest = (message: string) => new ChatError(ErrorCode.BAD_REQUEST, message);

/** How long clients wait before retrying a SERVICE_UNAVAILABLE answer from a database outage: about a failover's duration. */
export const UNAVAILABLE_RETRY_MS = 1000;

/**
 * Error masking shared by every transport (Yoga's maskedErrors, SSE,
 * WebSocket, live payloads): our own errors pass through; errors of the
 * request itself (parse, validation, Yoga's request checks) keep or get a
 * code of ours; anything unexpected becomes a generic
 * INTERNAL_SERVER_ERROR so internals never leak. Whatever leaves the server
 * has a code from {@link ErrorCode}.
 */
export function maskError(error: unknown): GraphQLError {
  if (error instanceof GraphQLError) {
    const original = error.originalError;
    if (original instanceof ChatError || (original instanceof GraphQLError && isErrorCode(original.extensions?.code))) {
      // A resolver threw one of ours: keep its message and code, add the location/path.
      return new GraphQLError(original.message, {
        nodes: error.nodes,
        source: error.source,
        positions: error.positions,
        path: error.path,
        extensions: { ...original.extensions },
      });
    }
    if (original === undefined || original === null) {
      // Errors of the request itself: ours and Yoga's carry codes (Yoga's
      // request checks also `http`); graphql-js's carry none.
      const code = error.extensions?.code;
      const http = error.extensions?.http as { status?: number } | undefined;
      const recoded =
        http?.status === 413
          ? ErrorCode.SIZE_LIMIT_EXCEEDED
          : isErrorCode(code)
            ? undefined
            : error.path === undefined
              ? http
                ? ErrorCode.BAD_REQUEST
                : ErrorCode.GRAPHQL_VALIDATION_FAILED
              : ErrorCode.INTERNAL_SERVER_ERROR;
      if (recoded === undefined) return error;
      if (recoded !== ErrorCode.INTERNAL_SERVER_ERROR) {
        return new GraphQLError(error.message, {
          nodes: error.nodes,
          source: error.source,
          positions: error.positions,
          extensions: { ...error.extensions, code: recoded },
        });
      }
    }
  }
  const cause = error instanceof GraphQLError ? error.originalError : error;
  if (isDatabaseUnavailable(cause)) {
    // Not a bug: the database is restarting or failing over (docs/architecture.md, "Failure handling").
    return new GraphQLError('The database is unavailable (restarting or failing over); try again. A send retried with the same clientMessageId is stored once.', {
      nodes: error instanceof GraphQLError ? error.nodes : undefined,
      path: error instanceof GraphQLError ? error.path : undefined,
      extensions: { code: ErrorCode.SERVICE_UNAVAILABLE, retryAfterMs: UNAVAILABLE_RETRY_MS },
    });
  }
  // Anything else, including graphql-js's errors while executing ("Cannot
  // return null for non-nullable field"): a bug of ours, not the client's.
  return new GraphQLError('Unexpected error.', {
    nodes: error instanceof GraphQLError ? error.nodes : undefined,
    path: error instanceof GraphQLError ? error.path : undefined,
    extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR },
  });
}
