/**
 * @chat-api/client: a typed session for the chat API. Start with
 * {@link createChatClient}; see client/README.md.
 */
export { createChatClient, type ChatClient, type ChatClientOptions, type MessageFilter } from './session.js';
export { createChatApi, type ChatApi, type EventsSincePage, type LogEvent, type ReplyOptions } from './api.js';
export { createHttpTransport, DEFAULT_REQUEST_TIMEOUT_MS, type HttpTransport, type HttpTransportOptions, type RequestOptions } from './http.js';
export { createTokenSource, type GetToken, type TokenRequest, type TokenSource } from './tokens.js';
export { ChatError, ErrorCode, isChatError, SERVER_ERROR_CODES } from './errors.js';
export { CloseReason } from './connection.js';
export type { Attempt, ChangeFence, ChangeOptions, SendOptions } from './outbox.js';
export type { LocalModel } from './model.js';
export type { RetryOptions } from './timing.js';
export { TYPING_RENEW_MS } from './live.js';
export type {
  ChatEvent,
  ConnectionStatus,
  Conversation,
  ConversationKind,
  ConversationPage,
  Cursor,
  Cursors,
  DepartureReason,
  JoinedEvent,
  LeftEvent,
  LiveMessage,
  LocalMember,
  Member,
  MemberChangedEvent,
  MemberPage,
  MemberRole,
  Message,
  MessageChange,
  MessageChangedEvent,
  MessageEvent,
  MessageHistory,
  MessagesSincePage,
  PendingSend,
  PresenceEvent,
  QuotedMessage,
  Reaction,
  ReadReceipt,
  ReceiptEvent,
  RenamedEvent,
  SavedCursors,
  TypingEvent,
  Unsubscribe,
  User,
} from './types.js';
/** Every generated document and operation type, for `request()` and custom hooks. */
export * as documents from './generated/graphql.js';
