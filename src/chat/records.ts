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

export interface MessageRecord {
  id: string;
  conversationId: string;
  seq: number;
  sender: UserRecord;
  body: string;
  clientMessageId: string;
  createdAt: Date;
}

/** Why a user is no longer in a conversation. */
export type DepartureReason = 'LEFT' | 'REMOVED';
