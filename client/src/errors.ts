/**
 * Error codes a {@link ChatError} carries: the server's closed set
 * (`extensions.code` of its GraphQL errors on every transport, see the API
 * README, "Errors"), then the SDK's own three. Switch on these: they are a
 * contract, messages are not.
 */
export const ErrorCode = {
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  FORBIDDEN: 'FORBIDDEN',
  NOT_FOUND: 'NOT_FOUND',
  /** An argument was refused; `field` names it. */
  BAD_USER_INPUT: 'BAD_USER_INPUT',
  /** A `clientMessageId` already used for other content; `field` names it. */
  IDEMPOTENCY_CONFLICT: 'IDEMPOTENCY_CONFLICT',
  /** A change's attempt that a later attempt of the same session overtook (a delayed retry); it changed nothing. */
  SUPERSEDED: 'SUPERSEDED',
  /** Too many of something; wait `retryAfterMs`. */
  RATE_LIMITED: 'RATE_LIMITED',
  /** Not a request the server accepts (malformed body or frame, a batch, a method or media type). */
  BAD_REQUEST: 'BAD_REQUEST',
  GRAPHQL_PARSE_FAILED: 'GRAPHQL_PARSE_FAILED',
  GRAPHQL_VALIDATION_FAILED: 'GRAPHQL_VALIDATION_FAILED',
  /** Operation limits, one code each: the query text, its tokens, depth, aliases, directives, estimated cost, repeated fields. */
  SIZE_LIMIT_EXCEEDED: 'SIZE_LIMIT_EXCEEDED',
  TOKEN_LIMIT_EXCEEDED: 'TOKEN_LIMIT_EXCEEDED',
  DEPTH_LIMIT_EXCEEDED: 'DEPTH_LIMIT_EXCEEDED',
  ALIAS_LIMIT_EXCEEDED: 'ALIAS_LIMIT_EXCEEDED',
  DIRECTIVE_LIMIT_EXCEEDED: 'DIRECTIVE_LIMIT_EXCEEDED',
  COST_LIMIT_EXCEEDED: 'COST_LIMIT_EXCEEDED',
  /** The same field selected more than 10 times in one place. */
  FIELD_LIMIT_EXCEEDED: 'FIELD_LIMIT_EXCEEDED',
  /** The server does not know a trusted document id sent in place of a query. */
  PERSISTED_DOCUMENT_NOT_FOUND: 'PERSISTED_DOCUMENT_NOT_FOUND',
  /** The server accepts trusted documents only: use `trustedDocuments: true`. */
  PERSISTED_DOCUMENT_REQUIRED: 'PERSISTED_DOCUMENT_REQUIRED',
  /** The instance is shutting down; try again. */
  SERVICE_UNAVAILABLE: 'SERVICE_UNAVAILABLE',
  INTERNAL_SERVER_ERROR: 'INTERNAL_SERVER_ERROR',
  /** The request never got an answer (offline, connection reset, server unreachable). */
  NETWORK_ERROR: 'NETWORK_ERROR',
  /** The session was closed before the operation finished. */
  CLOSED: 'CLOSED',
  /** The caller aborted the operation (its AbortSignal fired). */
  ABORTED: 'ABORTED',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** The codes the server sends: everything above but the SDK's own three. */
export const SERVER_ERROR_CODES: readonly ErrorCode[] = Object.values(ErrorCode).filter(
  (code) => code !== ErrorCode.NETWORK_ERROR && code !== ErrorCode.CLOSED && code !== ErrorCode.ABORTED,
);
const SERVER_CODES = new Set<string>(SERVER_ERROR_CODES);

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
  return isChatError(error, ErrorCode.NETWORK_ERROR, ErrorCode.RATE_LIMITED, ErrorCode.SERVICE_UNAVAILABLE, ErrorCode.INTERNAL_SERVER_ERROR);
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
