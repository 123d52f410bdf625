import type { DepartureReason, MessageRecord, UserRecord } from './records.js';

/**
 * What the chat services announce after a change has committed. The realtime
 * layer implements it (publish to the bus); services never publish before
 * their transaction commits, so nothing is delivered that the database does
 * not hold.
 */
export interface ChatEvents {
  /**
   * A message was stored. `memberIds` is the full member list when the
   * conversation is small enough to fan out on write, otherwise null.
   */
  messageSent(message: MessageRecord, audience: { memberCount: number; memberIds: string[] | null }): Promise<void>;
  /** Users joined; `lastSeq` is the conversation's seq at the join (they receive what follows). */
  membersJoined(conversationId: string, userIds: string[], lastSeq: number, memberCount: number): Promise<void>;
  membersLeft(conversationId: string, userIds: string[], reason: DepartureReason, memberCount: number): Promise<void>;
  /** Ephemeral (never stored): `user` is typing until `expiresAt`, or stopped. Same audience rule as messages. */
  typing(
    conversationId: string,
    user: UserRecord,
    typing: boolean,
    expiresAt: Date,
    audience: { memberCount: number; memberIds: string[] | null },
  ): Promise<void>;
}
