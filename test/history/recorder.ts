import { randomUUID } from 'node:crypto';
import type { ChatClient } from '../../client/src/index.js';
import type { ChangeRecord, DeliveryRecord, Expectation, History, ModelMessage, SendRecord, StoredState } from './checker.js';

/** What the recorder needs of an SDK session. */
export type RecordableClient = Pick<ChatClient, 'onMessage' | 'send'>;

/** What the recorder needs of a session whose changes and model it records. */
export type ChangingClient = Pick<ChatClient, 'edit' | 'delete' | 'react' | 'unreact' | 'local'>;

/** `reaction:count` pairs, sorted: one string to compare. */
export const reactionSummary = (reactions: readonly { reaction: string; count: number }[]) =>
  reactions
    .map((r) => `${r.reaction}:${r.count}`)
    .sort()
    .join(',');

/**
 * Records a run for the checker: every send (acknowledged or not, with the
 * clientMessageId chosen here so that even a send that never returns is
 * known), every HTTP attempt of a send (through `fetchFor`, which the SDK
 * uses for its requests), and every delivery per client.
 */
export class HistoryRecorder implements History {
  readonly sends: SendRecord[] = [];
  readonly deliveries: DeliveryRecord[] = [];
  readonly expectations: Expectation[] = [];
  readonly changes: ChangeRecord[] = [];
  /** Sessions whose local models are compared with the database, with the conversations they follow. */
  private readonly modelled: { client: string; chat: ChangingClient; conversations: string[] }[] = [];
  private changeOrder = 0;
  private readonly byClientMessageId = new Map<string, SendRecord>();
  /** Attempts seen before their send was registered (cannot happen with `send`, kept for safety). */
  private readonly orphanAttempts = new Map<string, number>();

  /**
   * A fetch for one client's session that counts each sendMessage attempt
   * (the SDK retries with the same clientMessageId) and otherwise passes
   * everything through untouched, including undici's `dispatcher`.
   */
  fetchFor(base: typeof fetch = globalThis.fetch): typeof fetch {
    return (input, init) => {
      if (typeof init?.body === 'string' && init.body.includes('clientMessageId')) {
        try {
          const id = (JSON.parse(init.body) as { variables?: { clientMessageId?: unknown } }).variables?.clientMessageId;
          if (typeof id === 'string') {
            const send = this.byClientMessageId.get(id);
            if (send) send.attempts++;
            else this.orphanAttempts.set(id, (this.orphanAttempts.get(id) ?? 0) + 1);
          }
        } catch {
          // not JSON: not ours to count
        }
      }
      return base(input, init);
    };
  }

  /** Starts recording one client's deliveries; it is expected to receive every message of `follows` after the given seq. */
  attach(client: string, userId: string, chat: RecordableClient, follows: Record<string, number>): () => void {
    for (const [conversationId, afterSeq] of Object.entries(follows)) this.expectations.push({ client, userId, conversationId, afterSeq });
    return chat.onMessage((message) => {
      this.deliveries.push({
        client,
        userId,
        conversationId: message.conversationId,
        seq: message.seq,
        messageId: message.id,
        senderId: message.sender.id,
        clientMessageId: message.clientMessageId,
        at: Date.now(),
      });
    });
  }

  /** Sends through the SDK (which retries with the same clientMessageId) and records the outcome. */
  async send(client: string, userId: string, chat: RecordableClient, conversationId: string, body: string, signal?: AbortSignal): Promise<SendRecord> {
    const clientMessageId = randomUUID();
    const record: SendRecord = { client, userId, conversationId, clientMessageId, body, startedAt: Date.now(), outcome: 'pending', attempts: this.orphanAttempts.get(clientMessageId) ?? 0 };
    this.sends.push(record);
    this.byClientMessageId.set(clientMessageId, record);
    try {
      const message = await chat.send(conversationId, body, { clientMessageId, signal });
      record.outcome = 'acked';
      record.seq = message.seq;
      record.messageId = message.id;
    } catch (error) {
      // An aborted send (given up at the end of a run) stays "pending": it may still have been stored.
      const code = (error as { code?: string }).code;
      if (code !== 'ABORTED' && code !== 'CLOSED') {
        record.outcome = 'rejected';
        record.error = code ?? String(error);
      }
    } finally {
      record.settledAt = Date.now();
    }
    return record;
  }

  /** Makes an edit, deletion or reaction through the SDK (which retries it) and records the outcome. */
  async change(client: string, userId: string, chat: ChangingClient, conversationId: string, seq: number, op: ChangeRecord['op'], signal?: AbortSignal): Promise<void> {
    const record: ChangeRecord = { client, userId, conversationId, seq, op, order: ++this.changeOrder, outcome: 'pending' };
    this.changes.push(record);
    try {
      if (op.kind === 'edit') await chat.edit(conversationId, seq, op.body, { signal });
      else if (op.kind === 'delete') await chat.delete(conversationId, seq, { signal });
      else if (op.kind === 'react') await chat.react(conversationId, seq, op.reaction, { signal });
      else await chat.unreact(conversationId, seq, op.reaction, { signal });
      record.outcome = 'acked';
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code !== 'ABORTED' && code !== 'CLOSED') record.outcome = 'rejected';
    }
  }

  /** Compares this session's local model with the database at each snapshot. */
  model(client: string, chat: ChangingClient, conversations: string[]): void {
    this.modelled.push({ client, chat, conversations });
  }

  /** Sends not settled yet. */
  pending(): SendRecord[] {
    return this.sends.filter((s) => s.settledAt === undefined);
  }

  /** A copy of what has been recorded so far (deliveries keep arriving while the checker reads the database). */
  snapshot(): History {
    const models: ModelMessage[] = [];
    for (const { client, chat, conversations } of this.modelled) {
      for (const conversationId of conversations) {
        for (const m of chat.local.timeline(conversationId, { threadReplies: true })) {
          models.push({ client, conversationId, seq: m.seq, body: m.body, deleted: m.deletedAt !== null, reactions: reactionSummary(m.reactions) });
        }
      }
    }
    return {
      sends: this.sends.map((s) => ({ ...s })),
      deliveries: [...this.deliveries],
      expectations: [...this.expectations],
      changes: this.changes.map((c) => ({ ...c })),
      models,
    };
  }
}

/** Reads what the checker compares with from the test database, as it is now. */
export async function readStoredState(
  query: <T extends Record<string, unknown>>(sql: string, params?: unknown[]) => Promise<T[]>,
  conversationIds: readonly string[],
): Promise<StoredState> {
  const messages = await query<{ conversation_id: string; seq: number; id: string; sender_id: string; client_message_id: string; body: string; deleted: boolean }>(
    'SELECT conversation_id, seq, id, sender_id, client_message_id, body, deleted_at IS NOT NULL AS deleted FROM messages WHERE conversation_id = ANY($1::uuid[])',
    [conversationIds],
  );
  const reactions = await query<{ conversation_id: string; message_seq: number; reaction: string; user_id: string }>(
    'SELECT conversation_id, message_seq, reaction, user_id FROM message_reactions WHERE conversation_id = ANY($1::uuid[])',
    [conversationIds],
  );
  const reactionsOf = new Map<string, { counts: Map<string, number>; by: Set<string> }>();
  for (const r of reactions) {
    const k = `${r.conversation_id}#${r.message_seq}`;
    let entry = reactionsOf.get(k);
    if (!entry) reactionsOf.set(k, (entry = { counts: new Map(), by: new Set() }));
    entry.counts.set(r.reaction, (entry.counts.get(r.reaction) ?? 0) + 1);
    entry.by.add(`${r.user_id}\u0000${r.reaction}`);
  }
  const members = await query<{ conversation_id: string; user_id: string }>(
    'SELECT conversation_id, user_id FROM conversation_members WHERE conversation_id = ANY($1::uuid[])',
    [conversationIds],
  );
  const conversations = await query<{ id: string; last_seq: number }>('SELECT id, last_seq FROM conversations WHERE id = ANY($1::uuid[])', [conversationIds]);
  return {
    messages: messages.map((m) => {
      const r = reactionsOf.get(`${m.conversation_id}#${m.seq}`);
      return {
        conversationId: m.conversation_id,
        seq: m.seq,
        id: m.id,
        senderId: m.sender_id,
        clientMessageId: m.client_message_id,
        body: m.body,
        deleted: m.deleted,
        reactions: reactionSummary([...(r?.counts ?? new Map<string, number>())].map(([reaction, count]) => ({ reaction, count }))),
        reactedBy: r?.by ?? new Set<string>(),
      };
    }),
    members: members.map((m) => ({ conversationId: m.conversation_id, userId: m.user_id })),
    lastSeqs: new Map(conversations.map((c) => [c.id, c.last_seq])),
  };
}
