/**
 * The shapes services hand to resolvers and to the realtime layer. They are
 * plain data (no Prisma types) so the same values travel over the event bus.
 */

export interface UserRecord {
  id: string;
  name: string;
}

export type ConversationKind = 'DIRECT' | 'GROUP';
export type MemberRole = 'OWNER' | 'MEMBER';

export interface ConversationRecord {
  id: string;
  kind: ConversationKind;
  title: string | null;
  lastSeq: number;
  /** The newest event's number (the event log's head; docs/architecture.md, "The event log"). */
  lastEventSeq: number;
  memberCount: number;
  createdAt: Date;
  lastMessageAt: Date | null;
  activeAt: Date;
}

/** A conversation as one member sees it: with that member's read position. */
export interface ConversationView extends ConversationRecord {
  viewerRole: MemberRole;
  viewerLastReadSeq: number;
}

export interface MemberRecord {
  conversationId: string;
  user: UserRecord;
  role: MemberRole;
  joinedAt: Date;
  lastReadSeq: number;
}

/** One reaction on a message and how many members reacted with it. */
export interface ReactionCount {
  reaction: string;
  count: number;
  /** Whether the viewer is among them: known only where a viewer read it (catch-up, history). */
  mine?: boolean;
}

/** A message in its current state. */
export interface MessageRecord {
  id: string;
  conversationId: string;
  seq: number;
  sender: UserRecord;
  /** '' for a deleted message (a tombstone). */
  body: string;
  clientMessageId: string;
  createdAt: Date;
  /** The event that last changed it. */
  eventSeq: number;
  editedAt: Date | null;
  deletedAt: Date | null;
  replyToSeq: number | null;
  threadRootSeq: number | null;
  threadReplyCount: number;
  threadLastReplySeq: number | null;
  reactions: ReactionCount[];
}

/** UPDATED: only in compacted reads, for a message changed since it was sent (edited, reacted to, replied to in its thread). */
export type MessageAction = 'SENT' | 'EDITED' | 'DELETED' | 'REACTION_ADDED' | 'REACTION_REMOVED' | 'UPDATED';
export type MemberAction = 'JOINED' | 'LEFT' | 'REMOVED';

/**
 * One event of a conversation's log, with the current state of what it
 * changed. `catchUp`: it comes from a compacted read (catch-up or a gap
 * fill), where it stands for every change of that entity up to `eventSeq`
 * and `action` is the last one known.
 */
export type ConversationEventRecord =
  | {
      kind: 'message';
      conversationId: string;
      eventSeq: number;
      action: MessageAction;
      message: MessageRecord;
      /** A thread reply's root, whose reply count and last reply this event changed. */
      threadRoot: MessageRecord | null;
      /** For reaction events: which reaction, and who. */
      reaction: string | null;
      actor: UserRecord | null;
      catchUp: boolean;
    }
  | {
      kind: 'member';
      conversationId: string;
      eventSeq: number;
      action: MemberAction;
      user: UserRecord;
      /** For JOINED: the member's role. */
      role: MemberRole | null;
      /** For JOINED: the member's read position (new members start caught up: the last seq at their join). */
      lastReadSeq: number | null;
      /** For LEFT / REMOVED of a group's owner: who owns the group now. */
      newOwner: UserRecord | null;
      catchUp: boolean;
    }
  | { kind: 'receipt'; conversationId: string; eventSeq: number; user: UserRecord; lastReadSeq: number; catchUp: boolean }
  | { kind: 'renamed'; conversationId: string; eventSeq: number; title: string; catchUp: boolean };

/** Why a user is no longer in a conversation. */
export type DepartureReason = 'LEFT' | 'REMOVED';
