import { CloseCode, createClient, type Client, type FormattedExecutionResult, type Sink } from 'graphql-ws/client';
import { ChatError, ErrorCode } from './errors.js';
import { documentIdOf } from './trusted-documents.js';
import { backoffDelay, createWakeSignal, sleep, type RetryOptions } from './timing.js';
import type { TokenSource } from './tokens.js';

/**
 * WebSocket close codes the session tells apart: graphql-ws's own (4xxx)
 * plus the standard ones this server uses. All of them are followed by a
 * reconnect; what differs is whether the next connection needs a new token.
 */
export const CloseReason = {
  ...CloseCode,
  /** 1000: we closed it (or the server ended it cleanly). */
  NormalClosure: 1000,
  /** 1006: the connection dropped without a closing handshake (network, proxy, crash). */
  Abnormal: 1006,
  /** 1012: the instance is restarting; reconnect (to another) and resume. */
  ServiceRestart: 1012,
  /** 1013: the socket fell too far behind; reconnect and resume from the cursors. */
  TryAgainLater: 1013,
  /** 4499: graphql-ws terminated a socket that stopped answering pings. */
  Terminated: 4499,
} as const;

export interface ConnectionOptions {
  url: string;
  tokens: TokenSource;
  webSocketImpl?: unknown;
  retry: RetryOptions;
  /** Ping period; a socket that does not answer within it is dropped and replaced. */
  keepAliveMs: number;
  /** Subscribe with the SDK's trusted document ids instead of their text. */
  trustedDocuments?: boolean;
  /** A socket is open and acknowledged (authenticated). */
  onConnected(): void;
  /** The socket went away; the connection is already retrying. */
  onClosed(code: number | undefined, reason: string): void;
  onError(error: ChatError): void;
}

/** The session's one WebSocket, reconnecting forever until disposed. */
export interface Connection {
  subscribe<TData>(payload: { query: string; variables?: Record<string, unknown> }, sink: Sink<FormattedExecutionResult<TData>>): () => void;
  /** Drops the current socket (or skips the current backoff wait) and connects again now. */
  reconnect(): void;
  dispose(): Promise<void>;
}

function closeCodeOf(event: unknown): number | undefined {
  return event && typeof event === 'object' && 'code' in event && typeof event.code === 'number' ? event.code : undefined;
}

function closeReasonOf(event: unknown): string {
  return event && typeof event === 'object' && 'reason' in event && typeof event.reason === 'string' ? event.reason : '';
}

/**
 * graphql-ws with the policy a chat session needs: eager (lazy: false, so a
 * socket exists even between subscriptions), retried forever with
 * exponential backoff and jitter, a fresh token on every connect, and pings
 * that detect half-open sockets (a laptop waking up, a phone switching
 * networks) which would otherwise look connected for minutes.
 *
 * graphql-ws gives up for good on a few close codes it deems fatal (4400,
 * 4500, …) and on errors its `shouldRetry` rejects. A chat session must not
 * die silently, so on those the client is replaced after a backoff.
 */
/** How long an opening WebSocket may take to open, and then to be acknowledged. */
const OPEN_TIMEOUT_MS = 15_000;

export function createConnection(options: ConnectionOptions): Connection {
  const wake = createWakeSignal();
  const lifetime = new AbortController();
  let client: Client;
  let lastClose: number | undefined;
  /** The server's "retry after <ms> ms" on its last close (an abuse limit): wait at least that long. */
  let retryHintMs = 0;
  let fatalFailures = 0;
  let waiting = false;
  let pongTimer: ReturnType<typeof setTimeout> | undefined;
  let openTimer: ReturnType<typeof setTimeout> | undefined;
  const closedWaiters = new Set<() => void>();

  function build(): Client {
    const next: Client = createClient({
      url: options.url,
      webSocketImpl: options.webSocketImpl,
      lazy: false,
      retryAttempts: Number.POSITIVE_INFINITY,
      // Retry every failure graphql-ws does not consider fatal, including
      // socket errors (e.g. connection refused while the server restarts),
      // which its default would treat as final.
      shouldRetry: () => true,
      retryWait: async (retries) => {
        waiting = true;
        // Never rejects: graphql-ws awaits this in a promise nobody catches.
        const hint = retryHintMs;
        retryHintMs = 0;
        await sleep(Math.max(backoffDelay(retries, options.retry), hint), { wake }).catch(() => {});
        waiting = false;
      },
      connectionAckWaitTimeout: OPEN_TIMEOUT_MS,
      keepAlive: options.keepAliveMs,
      connectionParams: async () => {
        if (lifetime.signal.aborted) throw new ChatError(ErrorCode.CLOSED, 'The session was closed');
        // 4403: the server refused our token (it expired): ask for a new one.
        let token: string;
        try {
          token = await options.tokens.forConnection(lastClose === CloseCode.Forbidden);
        } catch (error) {
          // graphql-ws closes this socket (4005) and retries; say why.
          options.onError(new ChatError(ErrorCode.UNAUTHENTICATED, `getToken failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error }));
          throw error;
        }
        return { authorization: `Bearer ${token}` };
      },
      on: {
        // An upgrade a frozen server (or a proxy in front of it) never answers
        // would hang forever: graphql-ws times out the acknowledgement, not the
        // opening. Give up on it after the ack timeout too, and retry.
        connecting: () => {
          clearTimeout(openTimer);
          openTimer = setTimeout(() => next.terminate(), OPEN_TIMEOUT_MS);
        },
        opened: () => clearTimeout(openTimer),
        connected: () => {
          fatalFailures = 0;
          options.onConnected();
        },
        closed: (event) => {
          clearTimeout(openTimer);
          clearTimeout(pongTimer);
          lastClose = closeCodeOf(event);
          retryHintMs = Number(/retry after (\d+) ms/.exec(closeReasonOf(event))?.[1] ?? 0);
          for (const resolve of closedWaiters) resolve();
          closedWaiters.clear();
          if (lifetime.signal.aborted) return;
          if (lastClose === CloseCode.Forbidden) {
            options.onError(new ChatError(ErrorCode.UNAUTHENTICATED, `The server refused the token (${closeReasonOf(event) || 'Forbidden'}); reconnecting with a new one`));
          }
          options.onClosed(lastClose, closeReasonOf(event));
        },
        ping: (received) => {
          if (received) return;
          clearTimeout(pongTimer);
          pongTimer = setTimeout(() => next.terminate(), options.keepAliveMs);
        },
        pong: (received) => {
          if (received) clearTimeout(pongTimer);
        },
      },
      onNonLazyError: (error) => {
        if (lifetime.signal.aborted) return;
        const code = closeCodeOf(error);
        options.onError(new ChatError(ErrorCode.NETWORK_ERROR, `The WebSocket failed${code ? ` with ${code}` : ''}; starting a new one`, { cause: error }));
        void sleep(backoffDelay(fatalFailures++, options.retry), { signal: lifetime.signal, wake }).then(
          () => {
            client = build();
          },
          () => {},
        );
      },
    });
    return next;
  }

  client = build();

  return {
    subscribe(payload, sink) {
      const documentId = options.trustedDocuments ? documentIdOf(payload.query) : undefined;
      // graphql-ws requires a query string: an empty one, and the id (src/security/guard.ts reads either).
      return client.subscribe(documentId ? ({ ...payload, query: '', documentId } as typeof payload) : payload, sink);
    },
    reconnect() {
      if (waiting) wake.fire();
      else client.terminate();
    },
    async dispose() {
      if (lifetime.signal.aborted) return;
      lifetime.abort(new ChatError(ErrorCode.CLOSED, 'The session was closed'));
      clearTimeout(pongTimer);
      clearTimeout(openTimer);
      const closed = new Promise<void>((resolve) => closedWaiters.add(resolve));
      wake.fire();
      // Wait for the closing handshake, but not for a peer that never answers.
      const cap = new AbortController();
      await Promise.race([
        Promise.resolve(client.dispose()).then(() => closed, () => {}),
        sleep(1000, { signal: cap.signal }).catch(() => {}),
      ]);
      cap.abort();
      closedWaiters.clear();
    },
  };
}
