import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import type { AnyVariables } from '@urql/core';
import { createChatApi, present, type ChatApi } from './api.js';
import { createConnection } from './connection.js';
import { createEmitter, createPushIterator } from './emitter.js';
import { ChatError, ErrorCode, toChatError } from './errors.js';
import { SendMessageDocument } from './generated/graphql.js';
import { createHttpTransport } from './http.js';
import { subscribeInbox } from './inbox.js';
import { createLiveFeeds, createReadMarker, createTypingNotifier, watchPresence, watchTyping, type LiveContext } from './live.js';
import { createOutbox, type SendOptions } from './outbox.js';
import { Sequencer } from './sequencer.js';
import { createResumer } from './resume.js';
import type { RetryOptions } from './timing.js';
import { createTokenSource, type GetToken } from './tokens.js';
import type {
  ChatEvent,
  ConnectionStatus,
  Cursors,
  JoinedEvent,
  LeftEvent,
  Message,
  PendingSend,
  PresenceEvent,
  ReadReceipt,
  Unsubscribe,
  User,
} from './types.js';

export interface ChatClientOptions {
  /** The GraphQL endpoint over HTTP, e.g. `https://chat.example.com/graphql`. */
  url: string;
  /** The WebSocket endpoint; default: `url` with ws:// or wss://. */
  wsUrl?: string;
  /** A fixed bearer token. Prefer `getToken` for tokens that expire. */
  token?: string;
  /** Called for a token on every (re)connect and after the server refuses one. */
  getToken?: GetToken;
  /** A WebSocket class where there is no global one (Node 20: `import WebSocket from 'ws'`). */
  webSocketImpl?: unknown;
  /** A fetch implementation; default: the global one. */
  fetch?: typeof fetch;
  /** Cursors saved from an earlier session (see `getCursors` / `onCursorsChange`): resume from them. */
  cursors?: Cursors;
  /** Same as calling `onCursorsChange` right away. */
  onCursorsChange?: (cursors: Cursors) => void;
  /** Backoff of reconnects and retries. Default: 500 ms doubling up to 30 s, with jitter. */
  retry?: RetryOptions;
  /** Messages per messagesSince page while catching up (1 to 500). Default 200. */
  catchUpPageSize?: number;
  /** WebSocket ping period; a socket silent for longer is replaced. Default 10 s. */
  keepAliveMs?: number;
  /**
   * HTTP requests (queries, mutations, sends) without a complete answer after
   * this many milliseconds fail with NETWORK_ERROR; sends and catch-ups then
   * retry (a send with the same clientMessageId, on a new connection). 0: no
   * timeout. Default 10 000.
   */
  requestTimeoutMs?: number;
  /**
   * Send the SDK's operations as trusted document ids (sha256 of their text)
   * instead of their text: smaller requests, and required by a server that
   * runs trusted documents only (TRUSTED_DOCUMENTS_ONLY). Default false.
   */
  trustedDocuments?: boolean;
}

/** Which messages a listener or iterator wants; default: all. */
export interface MessageFilter {
  conversationId?: string;
}

/**
 * One user's connection to the chat API. Delivers each conversation's
 * messages exactly once and in seq order across reconnects; see the README.
 */
export interface ChatClient extends ChatApi {
  readonly status: ConnectionStatus;
  /** Stores a message, retrying safely until the server acknowledges it; resolves with the stored message. */
  send(conversationId: string, body: string, options?: SendOptions): Promise<Message>;
  /** Sends not acknowledged yet, oldest first per conversation. */
  pendingSends(): PendingSend[];
  onMessage(listener: (message: Message) => void, filter?: MessageFilter): Unsubscribe;
  onJoined(listener: (event: JoinedEvent) => void): Unsubscribe;
  onLeft(listener: (event: LeftEvent) => void): Unsubscribe;
  /** Messages and membership changes, interleaved in delivery order. */
  onEvent(listener: (event: ChatEvent) => void): Unsubscribe;
  onStatus(listener: (status: ConnectionStatus) => void): Unsubscribe;
  /** Problems the session is handling by itself (reconnecting, retrying), for logs and UI hints. */
  onError(listener: (error: ChatError) => void): Unsubscribe;
  /** The cursors changed; persist them to resume later. Batched: at most once per tick. */
  onCursorsChange(listener: (cursors: Cursors) => void): Unsubscribe;
  /**
   * Messages from now on as an async iterator (`for await`); it ends when the
   * session closes. (`messages()` is the history query.)
   */
  incoming(filter?: MessageFilter): AsyncIterableIterator<Message>;
  /** Every event from now on as an async iterator; it ends when the session closes. */
  events(): AsyncIterableIterator<ChatEvent>;
  /** Where the session stands: persist this and pass it as `cursors` next time. */
  getCursors(): Cursors;
  /** Resolves when the session is live (now, or next time it gets there); rejects if it closes first. */
  ready(): Promise<void>;
  /** Drops the socket and reconnects at once (e.g. when the browser says it is online again). */
  reconnect(): void;
  /**
   * Presence of a conversation's members, or of the viewer's contacts (the
   * people in their direct conversations) without `conversationId`. The
   * listener first gets everyone's current state, then each change; after a
   * reconnect, everyone's state again.
   */
  onPresence(listener: (event: PresenceEvent) => void, filter?: MessageFilter): Unsubscribe;
  /** Who else is typing in a conversation: the whole list, on every change (expired indicators drop out by themselves). */
  onTyping(conversationId: string, listener: (users: User[]) => void): Unsubscribe;
  /** Call on every keystroke: tells the others the viewer is typing, renewing it at most every 2 s. */
  notifyTyping(conversationId: string): void;
  /** Withdraws the viewer's typing indicator (after sending, or when the draft is cleared). */
  stopTyping(conversationId: string): void;
  /**
   * Moves the read position forward to `seq`, without awaiting: call it for
   * every message the user has seen. Calls are coalesced (one markRead in
   * flight per conversation) and never move backward; failures go to `onError`.
   */
  markSeen(conversationId: string, seq: number): void;
  /** Every member's read position (all pages of `members`), for "seen by" marks. */
  readReceipts(conversationId: string): Promise<ReadReceipt[]>;
  /** Runs any typed query or mutation over HTTP (with the session's token handling). */
  request<TData, TVariables extends AnyVariables>(document: TypedDocumentNode<TData, TVariables>, variables: TVariables): Promise<TData>;
  /** Closes the socket, rejects pending sends with CLOSED, ends iterators. */
  close(): Promise<void>;
}

interface SessionEvents extends Record<string, unknown> {
  event: ChatEvent;
  status: ConnectionStatus;
  error: ChatError;
  cursors: Cursors;
  closed: undefined;
}

function webSocketUrl(url: string): string {
  const base = (globalThis as { location?: { href: string } }).location?.href;
  const parsed = new URL(url, base);
  parsed.protocol = parsed.protocol === 'https:' ? 'wss:' : parsed.protocol === 'http:' ? 'ws:' : parsed.protocol;
  return parsed.toString();
}

function validCursors(cursors: Cursors | undefined): [string, number][] {
  const entries = Object.entries(cursors ?? {});
  for (const [conversationId, seq] of entries) {
    if (!Number.isInteger(seq) || seq < 0) throw new ChatError(ErrorCode.BAD_USER_INPUT, `Cursor of ${conversationId} must be a non-negative integer`, { field: 'cursors' });
  }
  return entries;
}

/**
 * Creates a session and starts connecting. Nothing is awaited here:
 * listeners attached right after this call see everything.
 */
export function createChatClient(options: ChatClientOptions): ChatClient {
  const pageSize = options.catchUpPageSize ?? 200;
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 500) throw new ChatError(ErrorCode.BAD_USER_INPUT, 'catchUpPageSize must be 1 to 500', { field: 'catchUpPageSize' });
  const restored = validCursors(options.cursors);
  const retry = options.retry ?? {};
  const lifetime = new AbortController();
  const { signal } = lifetime;

  // A throwing listener is reported as an error event; one that throws while
  // handling an error event is dropped, or the two would feed each other.
  let reportingListenerError = false;
  const emitter = createEmitter<SessionEvents>((error) => {
    if (reportingListenerError) return;
    reportingListenerError = true;
    try {
      emitter.emit('error', new ChatError(ErrorCode.INTERNAL_SERVER_ERROR, `A listener threw: ${String(error)}`, { cause: error }));
    } finally {
      reportingListenerError = false;
    }
  });
  const report = (error: unknown) => {
    if (!signal.aborted) emitter.emit('error', toChatError(error));
  };
  let status: ConnectionStatus = 'connecting';
  const setStatus = (next: ConnectionStatus) => {
    if (status === next || status === 'closed') return;
    status = next;
    emitter.emit('status', next);
  };
  if (options.onCursorsChange) emitter.on('cursors', options.onCursorsChange);

  const tokens = createTokenSource(options);
  const http = createHttpTransport({ url: options.url, tokens, fetch: options.fetch, signal, requestTimeoutMs: options.requestTimeoutMs, trustedDocuments: options.trustedDocuments });
  const api = createChatApi(http);

  let cursorsQueued = false;
  const sequencer = new Sequencer({
    fetchSince: (conversationId, afterSeq, first) => api.messagesSince(conversationId, afterSeq, { first }),
    deliver: (message) => emitter.emit('event', { type: 'message', message }),
    onCursorsChange() {
      if (cursorsQueued) return;
      cursorsQueued = true;
      queueMicrotask(() => {
        cursorsQueued = false;
        if (!signal.aborted) emitter.emit('cursors', sequencer.cursors());
      });
    },
    onGone: (conversationId) => emitter.emit('event', { type: 'left', conversationId, reason: null }),
    onError: report,
    pageSize,
    retry,
    signal,
  });
  for (const [conversationId, seq] of restored) sequencer.follow(conversationId, seq);

  const outbox = createOutbox({
    sendMessage: async (conversationId, body, clientMessageId, attempt) =>
      present((await http.execute(SendMessageDocument, { conversationId, body, clientMessageId }, { freshConnection: attempt.freshConnection })).sendMessage, 'sendMessage'),
    // Our own message is usually the next one: deliver it now rather than
    // after its round trip through the subscription.
    onSent: (message) => sequencer.accept(message, 'sent'),
    onError: report,
    retry,
    signal,
  });

  const resumer = createResumer({
    api,
    sequencer,
    subscribe: (cursors, handlers) => subscribeInbox(connection, cursors, handlers),
    emit: (event) => emitter.emit('event', event),
    setStatus,
    report,
    unreadLimit: pageSize,
    retry,
    signal,
  });

  const feeds = createLiveFeeds();
  signal.addEventListener('abort', () => feeds.dispose(), { once: true });
  // A getter: the connection is created below, and feeds only start once it has connected.
  const live: LiveContext = { get connection() { return connection; }, feeds, report };
  const typingNotifier = createTypingNotifier(api.setTyping, report);
  const markSeen = createReadMarker(api.markRead, report);

  const connection = createConnection({
    url: options.wsUrl ?? webSocketUrl(options.url),
    tokens,
    webSocketImpl: options.webSocketImpl,
    retry,
    keepAliveMs: options.keepAliveMs ?? 10_000,
    trustedDocuments: options.trustedDocuments,
    onConnected() {
      outbox.wake(); // the network is back: retry sends now rather than at the end of their backoff
      resumer.connected();
      feeds.connected();
    },
    onClosed() {
      resumer.closed();
      feeds.closed();
    },
    onError: report,
  });

  const onEvent = (listener: (event: ChatEvent) => void) => emitter.on('event', listener);
  const wantsMessage = (filter: MessageFilter | undefined, message: Message) => !filter?.conversationId || filter.conversationId === message.conversationId;
  let closing: Promise<void> | undefined;
  /** Ends an iterator when the session closes (at once if it already has). */
  const onClosed = (end: () => void): Unsubscribe => {
    if (signal.aborted) {
      queueMicrotask(end);
      return () => {};
    }
    return emitter.on('closed', end);
  };

  return {
    ...api,
    get status() {
      return status;
    },
    send: (conversationId, body, sendOptions) => outbox.send(conversationId, body, sendOptions),
    pendingSends: () => outbox.pending(),
    onMessage: (listener, filter) => onEvent((event) => event.type === 'message' && wantsMessage(filter, event.message) && listener(event.message)),
    onJoined: (listener) => onEvent((event) => event.type === 'joined' && listener(event)),
    onLeft: (listener) => onEvent((event) => event.type === 'left' && listener(event)),
    onEvent,
    onStatus: (listener) => emitter.on('status', listener),
    onError: (listener) => emitter.on('error', listener),
    onCursorsChange: (listener) => emitter.on('cursors', listener),
    incoming: (filter) =>
      createPushIterator<Message>(
        (push) => onEvent((event) => event.type === 'message' && wantsMessage(filter, event.message) && push(event.message)),
        onClosed,
      ),
    events: () => createPushIterator<ChatEvent>(onEvent, onClosed),
    getCursors: () => sequencer.cursors(),
    ready() {
      if (status === 'live') return Promise.resolve();
      if (status === 'closed') return Promise.reject(new ChatError(ErrorCode.CLOSED, 'The session was closed'));
      return new Promise<void>((resolve, reject) => {
        const off = emitter.on('status', (next) => {
          if (next !== 'live' && next !== 'closed') return;
          off();
          if (next === 'live') resolve();
          else reject(new ChatError(ErrorCode.CLOSED, 'The session was closed'));
        });
      });
    },
    onPresence: (listener, filter) => watchPresence(live, filter?.conversationId, listener),
    onTyping: (conversationId, listener) => watchTyping(live, conversationId, listener),
    notifyTyping: (conversationId) => typingNotifier.typing(conversationId),
    stopTyping: (conversationId) => typingNotifier.stop(conversationId),
    markSeen,
    async readReceipts(conversationId) {
      const receipts: ReadReceipt[] = [];
      let after: string | null = null;
      for (;;) {
        const page = await api.members(conversationId, { first: 500, after });
        for (const member of page.members) receipts.push({ user: member.user, lastReadSeq: member.lastReadSeq });
        if (!page.hasNextPage) return receipts;
        after = page.endCursor;
      }
    },
    reconnect: () => connection.reconnect(),
    request: (document, variables) => http.execute(document, variables),
    close() {
      closing ??= (async () => {
        // Ends the inbox subscription, rejects pending sends with CLOSED,
        // stops catch-ups, aborts requests in flight.
        lifetime.abort(new ChatError(ErrorCode.CLOSED, 'The session was closed'));
        setStatus('closed');
        emitter.emit('closed', undefined);
        await connection.dispose();
        emitter.clear();
      })();
      return closing;
    },
  };
}
