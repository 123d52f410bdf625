import { GraphQLError } from 'graphql';
import { isDatabaseUnavailable } from './db/errors.js';

/**
 * The closed set of `extensions.code` values this API returns. Clients may
 * switch on these; adding one is a change to the public contract.
 */
export const ErrorCode = {
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  FORBIDDEN: 'FORBIDDEN',
  NOT_FOUND: 'NOT_FOUND',
  BAD_USER_INPUT: 'BAD_USER_INPUT',
  RATE_LIMITED: 'RATE_LIMITED',
  /** The database cannot be reached or written now (restart, failover): retry after retryAfterMs. */
  UNAVAILABLE: 'UNAVAILABLE',
  INTERNAL_SERVER_ERROR: 'INTERNAL_SERVER_ERROR',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

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

/** How long clients wait before retrying an UNAVAILABLE answer: about a failover's duration. */
export const UNAVAILABLE_RETRY_MS = 1000;

/**
 * Error masking shared by HTTP (Yoga's maskedErrors) and WebSocket delivery:
 * our own errors and GraphQL's validation errors pass through; anything
 * unexpected becomes a generic INTERNAL_SERVER_ERROR so internals never leak.
 */
export function maskError(error: unknown): GraphQLError {
  if (error instanceof GraphQLError) {
    const original = error.originalError;
    if (original === undefined || original === null || original instanceof GraphQLError) {
      if (original instanceof ChatError || original instanceof GraphQLError) {
        // A resolver threw one of ours: keep its message and code, add the location/path.
        return new GraphQLError(original.message, {
          nodes: error.nodes,
          source: error.source,
          positions: error.positions,
          path: error.path,
          extensions: { ...original.extensions },
        });
      }
      return error;
    }
  }
  const cause = error instanceof GraphQLError ? error.originalError : error;
  if (isDatabaseUnavailable(cause)) {
    // Not a bug: the database is restarting or failing over (docs/architecture.md, "Failure handling").
    return new GraphQLError('The database is unavailable (restarting or failing over); try again. A send retried with the same clientMessageId is stored once.', {
      nodes: error instanceof GraphQLError ? error.nodes : undefined,
      path: error instanceof GraphQLError ? error.path : undefined,
      extensions: { code: ErrorCode.UNAVAILABLE, retryAfterMs: UNAVAILABLE_RETRY_MS },
    });
  }
  return new GraphQLError('Unexpected error.', {
    nodes: error instanceof GraphQLError ? error.nodes : undefined,
    path: error instanceof GraphQLError ? error.path : undefined,
    extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR },
  });
}
