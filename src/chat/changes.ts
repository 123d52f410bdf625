import type { Viewer } from '../auth.js';
import type { Config } from '../config.js';
import type { Database } from '../db/client.js';
import { badInput, ChatError, ErrorCode, forbidden, notFound } from '../errors.js';
import type { ChatEvents } from './events.js';
import { messageFromJson } from './message-rows.js';
import { createRateLimiter } from './rate-limit.js';
import type { MessageAction, MessageRecord } from './records.js';
import type { UserService } from './users.js';
import { changeFence, conversationIdArgument, MAX_DISTINCT_REACTIONS, messageBody, reactionArgument, seqArgument, type ChangeFence } from './validate.js';

/** What each event-log write function returns (migrations 20261203000100_event_functions, 20261206000000_change_fences). */
interface ChangeRow {
  outcome: string;
  event_seq: number | null;
  message: Record<string, unknown> | null;
  members: number | null;
  member_ids: string[] | null;
}

export type MessageChangeService = ReturnType<typeof createMessageChangeService>;

/**
 * Changes to existing messages: edit, delete, react. Each is one call of a
 * SQL function (one round trip; delegated to the conversation's shard on
 * Citus) that takes the next event number and re-stamps the message, then
 * one announcement of the event with the message's new state.
 *
 * Each may carry a fencing token (`fence`): an attempt at or below the
 * highest token its writer already used in the conversation is refused with
 * SUPERSEDED and changes nothing, so a retried change's first attempt, held
 * up in an instance that stopped answering, cannot land after later changes
 * (docs/architecture.md, "Retried changes: fencing tokens").
 */
export function createMessageChangeService(
  db: Database,
  users: UserService,
  events: ChatEvents,
  config: Config,
  /** The same budget as sends (SEND_RATE_PER_SECOND, SEND_BURST): every message write counts. */
  limit?: { take(key: string): void | Promise<void> },
) {
  const writeLimit = limit ?? createRateLimiter('messages', config.sendRatePerSecond, config.sendBurst);
  /** Turns a refusal into the error that says why; 'ok' and 'unchanged' pass. */
  function check(outcome: string, seq: number): void {
    switch (outcome) {
      case 'ok':
      case 'unchanged':
        return;
      case 'no_conversation':
        throw notFound('Conversation not found');
      case 'not_member':
        throw forbidden('You are not a member of this conversation');
      case 'superseded':
        throw new ChatError(ErrorCode.SUPERSEDED, 'A later attempt of this writer (a higher fence.token) already reached the server; this one changed nothing', { field: 'fence.token' });
      case 'no_message':
        throw notFound(`No message ${seq} in this conversation`);
      case 'not_sender':
        throw forbidden('Only its sender can edit a message');
      case 'forbidden':
        throw forbidden('Only its sender, or the group owner, can delete a message');
      case 'deleted':
        throw badInput(`Message ${seq} was deleted`, 'seq');
      case 'too_many':
        throw badInput(`A message carries at most ${MAX_DISTINCT_REACTIONS} different reactions`, 'reaction');
      default:
        throw new Error(`unexpected outcome ${outcome}`);
    }
  }

  async function finish(
    row: ChangeRow,
    viewer: Viewer,
    conversationId: string,
    seq: number,
    action: MessageAction,
    reaction: string | null = null,
  ): Promise<MessageRecord> {
    check(row.outcome, seq);
    const senderId = row.message!.senderId as string;
    const sender = senderId === viewer.id ? { id: viewer.id, name: viewer.name } : ((await users.getMany([senderId])).get(senderId) ?? { id: senderId, name: senderId });
    const message = messageFromJson(row.message!, sender);
    if (row.outcome === 'ok') {
      events.changed(
        {
          kind: 'message',
          conversationId,
          eventSeq: row.event_seq!,
          action,
          message,
          threadRoot: null,
          reaction,
          actor: { id: viewer.id, name: viewer.name },
          catchUp: false,
        },
        { memberCount: row.members!, memberIds: row.member_ids },
      );
    }
    return message;
  }

  return {
    /** The reactions `userId` has on each message, keyed `conversationId:seq` (for ReactionCount.reactedByViewer). */
    async ownReactions(userId: string, keys: readonly { conversationId: string; seq: number }[]): Promise<Map<string, string[]>> {
      const rows = await db.messageReaction.findMany({
        where: { userId, OR: keys.map((k) => ({ conversationId: k.conversationId, messageSeq: k.seq })) },
        select: { conversationId: true, messageSeq: true, reaction: true },
      });
      const found = new Map<string, string[]>();
      for (const row of rows) {
        const key = `${row.conversationId}:${row.messageSeq}`;
        found.set(key, [...(found.get(key) ?? []), row.reaction]);
      }
      return found;
    },

    /** The sender replaces a message's body. Earlier versions are not kept; `editedAt` says when. */
    async edit(viewer: Viewer, id: string, seq: number, body: string, fenceArgument?: ChangeFence | null): Promise<MessageRecord> {
      const conversationId = conversationIdArgument(id);
      const at = seqArgument(seq, 'seq');
      const text = messageBody(body, config.maxBodyLength);
      const fence = changeFence(fenceArgument);
      await writeLimit.take(viewer.id);
      const [row] = await db.$queryRaw<ChangeRow[]>`
        SELECT outcome, event_seq, message, members, member_ids
          FROM chat_edit_message(${conversationId}::uuid, ${at}::integer, ${viewer.id}, ${text}, ${new Date()}::timestamptz, ${events.memberListMax}::integer,
                                 ${fence?.writer ?? null}::text, ${fence?.token ?? null}::bigint)`;
      return finish(row!, viewer, conversationId, at, 'EDITED');
    },

    /** The sender, or a group's owner, deletes a message: its body and reactions leave storage; a tombstone keeps its place. */
    async delete(viewer: Viewer, id: string, seq: number, fenceArgument?: ChangeFence | null): Promise<MessageRecord> {
      const conversationId = conversationIdArgument(id);
      const at = seqArgument(seq, 'seq');
      const fence = changeFence(fenceArgument);
      await writeLimit.take(viewer.id);
      const [row] = await db.$queryRaw<ChangeRow[]>`
        SELECT outcome, event_seq, message, members, member_ids
          FROM chat_delete_message(${conversationId}::uuid, ${at}::integer, ${viewer.id}, ${new Date()}::timestamptz, ${events.memberListMax}::integer,
                                   ${fence?.writer ?? null}::text, ${fence?.token ?? null}::bigint)`;
      return finish(row!, viewer, conversationId, at, 'DELETED');
    },

    /** A member adds (or removes) one reaction; adding one already there, or removing one that is not, changes nothing. */
    async react(viewer: Viewer, id: string, seq: number, reaction: string, add: boolean, fenceArgument?: ChangeFence | null): Promise<MessageRecord> {
      const conversationId = conversationIdArgument(id);
      const at = seqArgument(seq, 'seq');
      const name = reactionArgument(reaction);
      const fence = changeFence(fenceArgument);
      await writeLimit.take(viewer.id);
      const [row] = await db.$queryRaw<ChangeRow[]>`
        SELECT outcome, event_seq, message, members, member_ids
          FROM chat_react(${conversationId}::uuid, ${at}::integer, ${viewer.id}, ${name}, ${add}, ${new Date()}::timestamptz,
                          ${MAX_DISTINCT_REACTIONS}::integer, ${events.memberListMax}::integer, ${fence?.writer ?? null}::text, ${fence?.token ?? null}::bigint)`;
      const message = await finish(row!, viewer, conversationId, at, add ? 'REACTION_ADDED' : 'REACTION_REMOVED', name);
      // The viewer's own reactions, as they now stand (the summary the function returns is viewer-free).
      const mine = await db.messageReaction.findMany({
        where: { conversationId, messageSeq: at, userId: viewer.id },
        select: { reaction: true },
      });
      const own = new Set(mine.map((r) => r.reaction));
      return { ...message, reactions: message.reactions.map((r) => ({ ...r, mine: own.has(r.reaction) })) };
    },
  };
}
