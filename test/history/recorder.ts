import { randomUUID } from 'node:crypto';
import type { ChatClient } from '../../client/src/index.js';
import type { DeliveryRecord, Expectation, History, SendRecord, StoredState } from './checker.js';

/** What the recorder needs of an SDK session. */
export type RecordableClient = Pick<ChatClient, 'onMessage' | 'send'>;

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

  /** Sends not settled yet. */
  pending(): SendRecord[] {
    return this.sends.filter((s) => s.settledAt === undefined);
  }

  /** A copy of what has been recorded so far (deliveries keep arriving while the checker reads the database). */
  snapshot(): History {
    return { sends: this.sends.map((s) => ({ ...s })), deliveries: [...this.deliveries], expectations: [...this.expectations] };
  }
}

/** Reads what the checker compares with from the test database, as it is now. */
export async function readStoredState(
  query: <T extends Record<string, unknown>>(sql: string, params?: unknown[]) => Promise<T[]>,
  conversationIds: readonly string[],
): Promise<StoredState> {
  const messages = await query<{ conversation_id: string; seq: number; id: string; sender_id: string; client_message_id: string }>(
    'SELECT conversation_id, seq, id, sender_id, client_message_id FROM messages WHERE conversation_id = ANY($1::uuid[])',
    [conversationIds],
  );
  const members = await query<{ conversation_id: string; user_id: string }>(
    'SELECT conversation_id, user_id FROM conversation_members WHERE conversation_id = ANY($1::uuid[])',
    [conversationIds],
  );
  const conversations = await query<{ id: string; last_seq: number }>('SELECT id, last_seq FROM conversations WHERE id = ANY($1::uuid[])', [conversationIds]);
  return {
    messages: messages.map((m) => ({ conversationId: m.conversation_id, seq: m.seq, id: m.id, senderId: m.sender_id, clientMessageId: m.client_message_id })),
    members: members.map((m) => ({ conversationId: m.conversation_id, userId: m.user_id })),
    lastSeqs: new Map(conversations.map((c) => [c.id, c.last_seq])),
  };
}
