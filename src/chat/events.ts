import type { ConversationEventRecord, DepartureReason, MessageRecord, UserRecord } from './records.js';

/** Who is in a conversation, as the writing transaction saw it. */
export interface Audience {
  memberCount: number;
  /** Every member when memberCount <= ChatEvents.memberListMax, otherwise null. */
  memberIds: string[] | null;
}

/**
 * What the chat services announce after a change has committed. The realtime
 * layer implements it (src/realtime/fanout.ts). Services never announce
 * before their transaction commits, so nothing is delivered that the
 * database does not hold; and they never wait for the announcement: delivery
 * does not depend on it (docs/architecture.md, "Delivery guarantees").
 */
export interface ChatEvents {
  /**
   * The largest conversation whose member list the announcer needs with an
   * event (to publish to each member). Writers read the list in the same
   * transaction only up to this size.
   */
  readonly memberListMax: number;
  /** A message was sent (event SENT); `threadRoot` is its thread's root in its new state. */
  messageSent(message: MessageRecord, threadRoot: MessageRecord | null, audience: Audience): void;
  /** Any other event of a conversation's log (edits, deletes, reactions, receipts, renames, members). */
  changed(event: ConversationEventRecord, audience: Audience): void;
  /**
   * Users joined: told on their own channels (their inbox learns of the
   * conversation). `lastSeq` / `lastEventSeq`: where the conversation stood at
   * the join (they receive what follows).
   */
  membersJoined(conversationId: string, userIds: string[], lastSeq: number, lastEventSeq: number, memberCount: number): void;
  membersLeft(conversationId: string, userIds: string[], reason: DepartureReason, memberCount: number): void;
  /** Ephemeral (never stored): `user` is typing until `expiresAt`, or stopped. */
  typing(conversationId: string, user: UserRecord, typing: boolean, expiresAt: Date, audience: Audience): void;
}
