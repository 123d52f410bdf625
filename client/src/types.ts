import type {
  ConversationFieldsFragment,
  LiveMessageFieldsFragment,
  MemberFieldsFragment,
  MessageFieldsFragment,
  UserFieldsFragment,
} from './generated/graphql.js';
import type { ConversationKind, DepartureReason, MemberRole } from './generated/schema.js';

/**
 * A message in its current state, as every SDK call and event hands it out.
 * `createdAt`, `editedAt` and `deletedAt` are ISO-8601 strings. A deleted
 * message is a tombstone: `deleted: true`, `body: ''`, no reactions, same
 * seq. `reactions[].reactedByViewer` is kept up to date by the session (see
 * the README, "Edits, deletions and reactions").
 */
export type Message = MessageFieldsFragment;
/** One reaction on a message: how many members reacted with it, and whether the viewer is one of them. */
export type Reaction = Message['reactions'][number];
/** A message quoted by a reply (`replyTo`), or a thread's newest reply (`threadLastReply`). */
export type QuotedMessage = NonNullable<Message['replyTo']>;
/** A message as the live stream carries it: reaction counts without the viewer's flag. */
export type LiveMessage = LiveMessageFieldsFragment;
/** A conversation as the viewer sees it (their role, read position, unread count). */
export type Conversation = ConversationFieldsFragment;
export type User = UserFieldsFragment;
export type Member = MemberFieldsFragment;
export type { ConversationKind, DepartureReason, MemberRole };

/**
 * Where the session stands in one conversation:
 * - `afterEventSeq`: the highest event of the conversation's log it has applied
 *   (edits, deletions, reactions, receipts, … up to here are in its model);
 * - `afterSeq`: the highest message seq it has delivered through `onMessage`,
 *   with nothing missing before it.
 *
 * `afterEventSeq` is missing only in a cursor saved by SDK 0.1 (a plain
 * number, see {@link SavedCursors}) until the session's first sync places it.
 */
export interface Cursor {
  afterEventSeq?: number;
  afterSeq: number;
}

/** Conversation id → {@link Cursor}. Plain JSON: persist it as it is. */
export type Cursors = Record<string, Cursor>;

/**
 * What the `cursors` option accepts: cursors as `getCursors()` returns them,
 * or SDK 0.1's `{ [conversationId]: seq }`. A 0.1 cursor resumes `onMessage`
 * after that seq exactly as before; the event log of that conversation starts
 * where the conversation stands when the session first syncs.
 */
export type SavedCursors = Record<string, Cursor | number>;

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

/**
 * A message the session sees for the first time: once per seq, in seq order
 * per conversation, thread replies included (they have `threadRootSeq`). It
 * comes in its current state: a message edited or deleted before the session
 * saw it arrives edited, or as a tombstone.
 */
export interface MessageEvent {
  type: 'message';
  message: Message;
}

/**
 * What changed a message already delivered:
 * - `EDITED`, `DELETED` (now a tombstone), `REACTION_ADDED`, `REACTION_REMOVED`
 *   (`reaction` and `actor` say which and who);
 * - `THREAD_REPLIED`: a reply in its thread (its `threadReplyCount` and
 *   `threadLastReply` changed); the reply itself is a `message` event;
 * - `UPDATED`: a compacted change whose kind is not known (a catch-up after a
 *   disconnect stands for every change since; read the message's state).
 */
export type MessageChange = 'EDITED' | 'DELETED' | 'REACTION_ADDED' | 'REACTION_REMOVED' | 'THREAD_REPLIED' | 'UPDATED';

/** A message the session had already delivered changed: `message` is its state now. */
export interface MessageChangedEvent {
  type: 'messageChanged';
  conversationId: string;
  seq: number;
  message: Message;
  /** What happened: the latest change known (a compacted catch-up stands for every change since the cursor). */
  action: MessageChange;
  /** Who did it, on live events; null in a compacted catch-up. */
  actor: User | null;
  /** For REACTION_ADDED / REACTION_REMOVED: which one. */
  reaction: string | null;
  /** The event of the conversation's log (for ordering and debugging). */
  eventSeq: number;
  /** True when this comes from a compacted catch-up (it stands for every change of the message since the cursor). */
  catchUp: boolean;
}

/** A member's read position moved: they have read every message up to `lastReadSeq` (live read receipts). */
export interface ReceiptEvent {
  type: 'receipt';
  conversationId: string;
  user: User;
  lastReadSeq: number;
  eventSeq: number;
  catchUp: boolean;
}

/** Someone else joined, left or was removed from a conversation of the viewer's. */
export interface MemberChangedEvent {
  type: 'member';
  conversationId: string;
  action: 'JOINED' | 'LEFT' | 'REMOVED';
  user: User;
  /** For JOINED: their role. */
  role: MemberRole | null;
  /** When the owner left: who owns the group now. */
  newOwner: User | null;
  eventSeq: number;
  catchUp: boolean;
}

/** A group got a new title. */
export interface RenamedEvent {
  type: 'renamed';
  conversationId: string;
  title: string;
  eventSeq: number;
  catchUp: boolean;
}

/**
 * Everything the session delivers, in the order it applies it (per
 * conversation: the order of its event log, with `message` events in seq
 * order; see the README).
 */
export type ChatEvent = MessageEvent | MessageChangedEvent | ReceiptEvent | MemberChangedEvent | RenamedEvent | JoinedEvent | LeftEvent;

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
  /** The message it quotes, if any. */
  replyToSeq: number | null;
  /** The thread it replies in, if any. */
  threadRootSeq: number | null;
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

/** A member as the session's model holds it: kept current by the event log. */
export interface LocalMember extends ReadReceipt {
  role: MemberRole;
}
