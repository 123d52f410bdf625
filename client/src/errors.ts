/**
 * Error codes a {@link ChatError} carries. The first seven are the server's
 * closed set (`extensions.code` of its GraphQL errors, see the API README);
 * the last three are the SDK's own. Switch on these: they are a contract,
 * messages are not.
 */
export const ErrorCode = {
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  FORBIDDEN: 'FORBIDDEN',
  NOT_FOUND: 'NOT_FOUND',
  BAD_USER_INPUT: 'BAD_USER_INPUT',
  RATE_LIMITED: 'RATE_LIMITED',
  /** The server's database is restarting or failing over: retried after retryAfterMs. */
  UNAVAILABLE: 'UNAVAILABLE',
  INTERNAL_SERVER_ERROR: 'INTERNAL_SERVER_ERROR',
  /** The request never got an answer (offline, connection reset, server unreachable). */
  NETWORK_ERROR: 'NETWORK_ERROR',
  /** The session was closed before the operation finished. */
  CLOSED: 'CLOSED',
  /** The caller aborted the operation (its AbortSignal fired). */
  ABORTED: 'ABORTED',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const SERVER_CODES = new Set<string>([
  ErrorCode.UNAUTHENTICATED,
  ErrorCode.FORBIDDEN,
  ErrorCode.NOT_FOUND,
  ErrorCode.BAD_USER_INPUT,
  ErrorCode.RATE_LIMITED,
  ErrorCode.UNAVAILABLE,
  ErrorCode.INTERNAL_SERVER_ERROR,
]);

/** What every failed SDK operation rejects with, and what `onError` listeners receive. */
export class ChatError extends Error {
  override readonly name = 'ChatError';
  readonly code: ErrorCode;
  /** With RATE_LIMITED: how long to wait before trying again. */
  readonly retryAfterMs: number | undefined;
  /** With BAD_USER_INPUT: the argument that was rejected. */
  readonly field: string | undefined;

  constructor(code: ErrorCode, message: string, options: { retryAfterMs?: number; field?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryAfterMs = options.retryAfterMs;
    this.field = options.field;
  }
}

/** True for a {@link ChatError} with one of `codes` (any code when none are given). */
export function isChatError(error: unknown, ...codes: ErrorCode[]): error is ChatError {
  return error instanceof ChatError && (codes.length === 0 || codes.includes(error.code));
}

/**
 * Failures worth repeating unchanged: the request may not have reached the
 * server, the server asked us to slow down or to come back after a database
 * failover, or it failed unexpectedly (a send
 * is idempotent, so repeating it cannot store a second copy).
 */
export function isTransient(error: unknown): boolean {
  return isChatError(error, ErrorCode.NETWORK_ERROR, ErrorCode.RATE_LIMITED, ErrorCode.UNAVAILABLE, ErrorCode.INTERNAL_SERVER_ERROR);
}

/** Access to the conversation is gone: stop following it. */
export function isGone(error: unknown): boolean {
  return isChatError(error, ErrorCode.FORBIDDEN, ErrorCode.NOT_FOUND);
}

interface GraphQLErrorLike {
  message?: unknown;
  extensions?: { code?: unknown; retryAfterMs?: unknown; field?: unknown } | null;
}

/** A ChatError from a GraphQL error as the server sends it (HTTP or WebSocket). */
export function fromGraphQLError(error: GraphQLErrorLike): ChatError {
  const code = typeof error.extensions?.code === 'string' && SERVER_CODES.has(error.extensions.code) ? (error.extensions.code as ErrorCode) : ErrorCode.INTERNAL_SERVER_ERROR;
  const retryAfterMs = typeof error.extensions?.retryAfterMs === 'number' ? error.extensions.retryAfterMs : undefined;
  const field = typeof error.extensions?.field === 'string' ? error.extensions.field : undefined;
  return new ChatError(code, typeof error.message === 'string' ? error.message : 'Unexpected error', { retryAfterMs, field });
}

/** Normalizes anything thrown inside the SDK into a ChatError. */
export function toChatError(error: unknown): ChatError {
  if (error instanceof ChatError) return error;
  if (Array.isArray(error) && error.length > 0) return fromGraphQLError(error[0] as GraphQLErrorLike);
  if (error && typeof error === 'object' && 'extensions' in error) return fromGraphQLError(error as GraphQLErrorLike);
  const message = error instanceof Error ? error.message : String(error);
  return new ChatError(ErrorCode.NETWORK_ERROR, message, { cause: error });
}
