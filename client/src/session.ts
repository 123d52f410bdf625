import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import type { AnyVariables } from '@urql/core';
import { createChatApi, present, type ChatApi } from './api.js';
import { createConnection } from './connection.js';
import { createEmitter, createPushIterator } from './emitter.js';
import { ChatError, ErrorCode, toChatError } from './errors.js';
import { SendMessageDocument } from './generated/graphql.js';
import { createHttpTransport } from './http.js';
import { createLiveFeeds, createReadMarker, createTypingNotifier, watchPresence, watchTyping, type LiveContext } from './live.js';
import { LocalStore, type LocalModel } from './model.js';
import { createOutbox, type ChangeOptions, type SendOptions } from './outbox.js';
import { createResumer } from './resume.js';
import { Sequencer } from './sequencer.js';
import { subscribeEvents } from './stream.js';
import type { RetryOptions } from './timing.js';
import { createTokenSource, type GetToken } from './tokens.js';
import type {
  ChatEvent,
  ConnectionStatus,
  Conversation,
  Cursor,
  Cursors,
  JoinedEvent,
  LeftEvent,
  Message,
  MessageChangedEvent,
  MessageHistory,
  PendingSend,
  PresenceEvent,
  ReadReceipt,
  SavedCursors,
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
  /**
   * Cursors saved from an earlier session (see `getCursors` /
   * `onCursorsChange`): resume from them. SDK 0.1's `{ [id]: seq }` is
   * accepted too (see {@link SavedCursors}).
   */
  cursors?: SavedCursors;
  /** Same as calling `onCursorsChange` right away. */
  onCursorsChange?: (cursors: Cursors) => void;
  /** Backoff of reconnects and retries. Default: 500 ms doubling up to 30 s, with jitter. */
  retry?: RetryOptions;
  /**
   * Page size while catching up (1 to 500; default 200): changed messages
   * per eventsSince page, messages per messagesSince page, and the most
   * unread messages delivered for a conversation joined while offline.
   */
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
  /** Only the replies in this thread (with `conversationId`). */
  threadRootSeq?: number;
}

/**
 * One user's connection to the chat API. Applies each conversation's event
 * log exactly once and in order across reconnects, keeps a local model of
 * what it applied (`local`), and delivers each message once, in seq order;
 * see the README.
 */
export interface ChatClient extends ChatApi {
  readonly status: ConnectionStatus;
  /**
   * The session's local model: each conversation's messages in their current
   * state (edits, deletions, reactions with the viewer's own flag, thread
   * counts), its title and, once asked for, its members' read positions.
   */
  readonly local: LocalModel;
  /**
   * Stores a message, retrying safely until the server acknowledges it;
   * resolves with the stored message. `replyToSeq` quotes a message,
   * `threadRootSeq` replies in a thread.
   */
  send(conversationId: string, body: string, options?: SendOptions): Promise<Message>;
  /** `send` quoting message `replyToSeq` (shown with it as `replyTo`). */
  reply(conversationId: string, replyToSeq: number, body: string, options?: SendOptions): Promise<Message>;
  /** `send` as a reply in the thread under message `threadRootSeq`. */
  sendInThread(conversationId: string, threadRootSeq: number, body: string, options?: SendOptions): Promise<Message>;
  /**
   * Replaces the body of one of the viewer's messages (the sender only).
   * Like `send`, it retries through network failures and is made in call
   * order with the viewer's other writes to the conversation.
   */
  edit(conversationId: string, seq: number, body: string, options?: ChangeOptions): Promise<Message>;
  /** Deletes a message (the sender's own, or any in a group the viewer owns): it becomes a tombstone. Retried like `edit`. */
  delete(conversationId: string, seq: number, options?: ChangeOptions): Promise<Message>;
  /** Adds the viewer's reaction (one emoji, or a short name like `party_parrot`). Retried like `edit`. */
  react(conversationId: string, seq: number, reaction: string, options?: ChangeOptions): Promise<Message>;
  /** Removes the viewer's reaction. Retried like `edit`. */
  unreact(conversationId: string, seq: number, reaction: string, options?: ChangeOptions): Promise<Message>;
  /** Gives a group a new title (any member may); everyone gets a `renamed` event. */
  rename(conversationId: string, title: string): Promise<Conversation>;
  /** A page of a thread's replies (newest first in paging order, each page ascending), kept in the local model. */
  loadThread(conversationId: string, threadRootSeq: number, page?: { before?: number; last?: number }): Promise<MessageHistory>;
  /** Sends not acknowledged yet, oldest first per conversation. */
  pendingSends(): PendingSend[];
  /**
   * Each message the first time the session sees it: once per seq, in seq
   * order per conversation, thread replies included (filter with
   * `threadRootSeq`), in its current state at that moment.
   */
  onMessage(listener: (message: Message) => void, filter?: MessageFilter): Unsubscribe;
  /** A delivered message changed: edited, deleted, reacted to, replied to in its thread. */
  onMessageChanged(listener: (event: MessageChangedEvent) => void, filter?: MessageFilter): Unsubscribe;
  onJoined(listener: (event: JoinedEvent) => void): Unsubscribe;
  onLeft(listener: (event: LeftEvent) => void): Unsubscribe;
  /** Everything, interleaved in the order the session applies it: messages, changes, receipts, members, renames, joins, departures. */
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
  /**
   * Every member's read position, for "seen by" marks: read once (all pages
   * of `members`), then kept current by live read receipts.
   */
  readReceipts(conversationId: string): Promise<ReadReceipt[]>;
  /**
   * Live read receipts: the listener gets every member's read position once
   * loaded, then the whole list again whenever one moves (a ReadReceipt, a
   * member's own message, a join or departure).
   */
  onReadReceipts(conversationId: string, listener: (receipts: ReadReceipt[]) => void): Unsubscribe;
  /** Runs any typed query or mutation over HTTP (with the session's token handling). */
  request<TData, TVariables extends AnyVariables>(document: TypedDocumentNode<TData, TVariables>, variables: TVariables): Promise<TData>;
  /** Closes the socket, rejects pending sends with CLOSED, ends iterators. */
  close(): Promise<void>;
}

interface SessionEvents extends Record<string, unknown> {
  event: ChatEvent;
  /** A conversation's members or read positions changed in the model. */
  members: string;
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

const position = (value: unknown) => typeof value === 'number' && Number.isInteger(value) && value >= 0;

/** Saved cursors, checked, with SDK 0.1's plain seqs turned into cursors without an event position. */
function validCursors(cursors: SavedCursors | undefined): [string, Cursor][] {
  return Object.entries(cursors ?? {}).map(([conversationId, saved]) => {
    const cursor = typeof saved === 'number' ? { afterSeq: saved } : saved;
    if (!cursor || typeof cursor !== 'object' || !position(cursor.afterSeq) || (cursor.afterEventSeq !== undefined && !position(cursor.afterEventSeq))) {
      throw new ChatError(ErrorCode.BAD_USER_INPUT, `Cursor of ${conversationId} must be { afterEventSeq, afterSeq } with non-negative integers`, { field: 'cursors' });
    }
    return [conversationId, cursor];
  });
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
  const store = new LocalStore();
  let viewer: User | undefined;
  const sequencer = new Sequencer({
    api,
    store,
    viewerId: () => viewer?.id,
    emit: (event) => emitter.emit('event', event),
    membersChanged: (conversationId) => emitter.emit('members', conversationId),
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
  for (const [conversationId, cursor] of restored) {
    sequencer.follow(conversationId, { eventCursor: cursor.afterEventSeq, messageCursor: cursor.afterSeq });
  }

  const outbox = createOutbox({
    sendMessage: async (conversationId, body, clientMessageId, reply, attempt) =>
      present(
        (
          await http.execute(
            SendMessageDocument,
            { conversationId, body, clientMessageId, replyToSeq: reply.replyToSeq, threadRootSeq: reply.threadRootSeq },
            { freshConnection: attempt.freshConnection },
          )
        ).sendMessage,
        'sendMessage',
      ),
    // Our own message is usually the next one: deliver it now rather than
    // after its round trip through the subscription. A change's answer is
    // the message's newest state, with the viewer's own reactions.
    onDone: (message, kind) => (kind === 'send' ? sequencer.acceptSent(message) : sequencer.acceptMessage(message)),
    onSendStarted: (conversationId) => sequencer.sendStarted(conversationId),
    onSendFailed: (conversationId) => sequencer.sendFailed(conversationId),
    onError: report,
    retry,
    signal,
  });

  const resumer = createResumer({
    api,
    sequencer,
    subscribe: (cursors, handlers) => subscribeEvents(connection, cursors, handlers),
    async prepare() {
      viewer ??= await api.viewer();
    },
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
  const wantsMessage = (filter: MessageFilter | undefined, message: Message) =>
    (!filter?.conversationId || filter.conversationId === message.conversationId) && (filter?.threadRootSeq === undefined || filter.threadRootSeq === message.threadRootSeq);
  /** Puts what a read returned into the model (newer states only), then hands it back. */
  const kept = <T extends { messages: Message[] }>(page: T): T => {
    for (const message of page.messages) sequencer.acceptMessage(message);
    return page;
  };
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
    get local() {
      return store;
    },
    messages: async (conversationId, page) => kept(await api.messages(conversationId, page)),
    messagesSince: async (conversationId, afterSeq, page) => kept(await api.messagesSince(conversationId, afterSeq, page)),
    loadThread: async (conversationId, threadRootSeq, page = {}) => kept(await api.messages(conversationId, { ...page, threadRootSeq })),
    send: (conversationId, body, sendOptions) => outbox.send(conversationId, body, sendOptions),
    reply: (conversationId, replyToSeq, body, sendOptions) => outbox.send(conversationId, body, { ...sendOptions, replyToSeq }),
    sendInThread: (conversationId, threadRootSeq, body, sendOptions) => outbox.send(conversationId, body, { ...sendOptions, threadRootSeq }),
    // Each attempt carries its fencing token and, after a timeout, goes out on a new connection (as a send's does).
    edit: (conversationId, seq, body, changeOptions) => outbox.change(conversationId, (attempt) => api.editMessage(conversationId, seq, body, attempt), changeOptions),
    delete: (conversationId, seq, changeOptions) => outbox.change(conversationId, (attempt) => api.deleteMessage(conversationId, seq, attempt), changeOptions),
    react: (conversationId, seq, reaction, changeOptions) => outbox.change(conversationId, (attempt) => api.addReaction(conversationId, seq, reaction, attempt), changeOptions),
    unreact: (conversationId, seq, reaction, changeOptions) => outbox.change(conversationId, (attempt) => api.removeReaction(conversationId, seq, reaction, attempt), changeOptions),
    async rename(conversationId, title) {
      const conversation = await api.renameConversation(conversationId, title);
      sequencer.noteTitle(conversationId, conversation.title);
      return conversation;
    },
    pendingSends: () => outbox.pending(),
    onMessage: (listener, filter) => onEvent((event) => event.type === 'message' && wantsMessage(filter, event.message) && listener(event.message)),
    onMessageChanged: (listener, filter) => onEvent((event) => event.type === 'messageChanged' && wantsMessage(filter, event.message) && listener(event)),
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
      return (await sequencer.loadMembers(conversationId)).map(({ user, lastReadSeq }): ReadReceipt => ({ user, lastReadSeq }));
    },
    onReadReceipts(conversationId, listener) {
      let stopped = false;
      const publish = () => {
        const members = store.members(conversationId);
        if (!stopped && members) listener(members.map(({ user, lastReadSeq }) => ({ user, lastReadSeq })));
      };
      const load = () =>
        sequencer.loadMembers(conversationId).then(
          (members) => !stopped && listener(members.map(({ user, lastReadSeq }) => ({ user, lastReadSeq }))),
          (error: unknown) => !stopped && report(error),
        );
      const offMembers = emitter.on('members', (changed) => changed === conversationId && publish());
      // The model keeps the list current only for a conversation the session
      // follows: asked before the first sync, read it again once live.
      const offStatus = emitter.on('status', (next) => next === 'live' && !store.members(conversationId) && void load());
      void load();
      return () => {
        stopped = true;
        offMembers();
        offStatus();
      };
    },
    reconnect: () => connection.reconnect(),
    request: (document, variables) => http.execute(document, variables),
    close() {
      closing ??= (async () => {
        // Ends the events subscription, rejects pending sends with CLOSED,
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
