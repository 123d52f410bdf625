import { CloseCode } from 'graphql-ws';

/**
 * WebSocket close codes this server uses. graphql-ws names its own
 * (4xxx, re-exported here); the rest are standard RFC 6455 / IANA codes that
 * graphql-ws clients treat as retryable, which is what we want them to do.
 */
export const CloseReason = {
  ...CloseCode,
  /** 1012 Service Restart: this instance is shutting down; reconnect (to another) and resume. */
  ServiceRestart: 1012,
  /** 1013 Try Again Later: the socket fell too far behind; reconnect and resume from the cursor. */
  SlowConsumer: 1013,
  /** 1013 too, for an abuse limit at connection_init; the reason says `retry after <ms> ms`. */
  TryAgainLater: 1013,
} as const;
