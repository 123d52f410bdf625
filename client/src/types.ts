import type {
  ConversationFieldsFragment,
  MemberFieldsFragment,
  MessageFieldsFragment,
  UserFieldsFragment,
} from './generated/graphql.js';
import type { ConversationKind, DepartureReason, MemberRole } from './generated/schema.js';

/** A stored message, as every SDK call returns it. `createdAt` is an ISO-8601 string. */
export type Message = MessageFieldsFragment;
/** A conversation as the viewer sees it (their role, read position, unread count). */
export type Conversation = ConversationFieldsFragment;
export type User = UserFieldsFragment;
export type Member = MemberFieldsFragment;
export type { ConversationKind, DepartureReason, MemberRole };

/**
 * Where the session stands in each conversation: conversation id → the
 * highest seq it has delivered with nothing missing before it. Plain JSON:
 * persist it as it is.
 */
export type Cursors = Record<string, number>;

/** The viewer joined a conversation (was added, or started it). */
export interface JoinedEvent {
  type: 'joined';
  conversationId: string;
  /** Null if the viewer has already left again. */
  conversation: Conversation | null;
}

/** The viewer is no longer in a conversation; nothing more arrives from it. */
export interface LeftEvent {
  type: 'left';
  conversationId: string;
  /**
   * Why, when the server said so. Null when the session only found out while
   * reconnecting (the conversation was gone when it caught up).
   */
  reason: DepartureReason | null;
}

export interface MessageEvent {
  type: 'message';
  message: Message;
}

/** Everything the session delivers, in the order it delivers it. */
export type ChatEvent = MessageEvent | JoinedEvent | LeftEvent;

/**
 * - `connecting`: no usable socket yet (first connect, or reconnecting after a drop);
 * - `syncing`: connected, catching up on what was missed;
 * - `live`: caught up and subscribed; new messages arrive as they are sent;
 * - `closed`: `close()` was called.
 */
export type ConnectionStatus = 'connecting' | 'syncing' | 'live' | 'closed';

/** A page of the viewer's conversations, most recently active first. */
export interface ConversationPage {
  conversations: Conversation[];
  hasNextPage: boolean;
  /** Pass as `after` for the next page. */
  endCursor: string | null;
}

export interface MemberPage {
  members: Member[];
  hasNextPage: boolean;
  endCursor: string | null;
}

/** A page of history (ascending by seq); `hasMore`: ask again with `before` = the first seq. */
export interface MessageHistory {
  messages: Message[];
  hasMore: boolean;
}

/** A page of catch-up after a seq (ascending). */
export interface MessagesSincePage {
  messages: Message[];
  hasMore: boolean;
  nextAfterSeq: number;
  /** The conversation's newest seq when the page was read. */
  lastSeq: number;
}

/** A send that has not been acknowledged by the server yet. */
export interface PendingSend {
  conversationId: string;
  body: string;
  clientMessageId: string;
  /** Attempts made so far (0 while the first one is being prepared). */
  attempts: number;
}

export type Unsubscribe = () => void;

/** Someone came online or went offline (or, at the start of a subscription, their current state). */
export interface PresenceEvent {
  user: User;
  online: boolean;
}

/** Someone else started or stopped typing; ephemeral, never stored. */
export interface TypingEvent {
  conversationId: string;
  user: User;
  typing: boolean;
  /** When the indicator lapses unless renewed (server clock, ISO-8601). */
  expiresAt: string;
}

/** How far one member has read: every message with `seq <= lastReadSeq`. */
export interface ReadReceipt {
  user: User;
  lastReadSeq: number;
}
