import WebSocket from 'ws';
import { createChatClient, type ChatClient, type ChatClientOptions, type ChatError, type ChatEvent, type Cursors, type Message, type MessageChangedEvent } from '../src/index.js';
import type { TestServer } from '../../test/support/server.js';
import { signToken } from '../../src/auth.js';
import { TEST_JWT_SECRET } from '../../test/support/server.js';

/** Polls `predicate` until it holds; fails with `what` (and the last state) after `timeoutMs`. */
export async function waitFor(predicate: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000, describe?: () => unknown): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${describe ? `; state: ${JSON.stringify(describe()).slice(0, 2000)}` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export const token = (id: string, name = id, expiresIn?: string | number) => signToken(TEST_JWT_SECRET, id, { name, expiresIn });

/** The message seq of each cursor: how far `onMessage` has delivered, per conversation. */
export const seqCursors = (cursors: Cursors) => Object.fromEntries(Object.entries(cursors).map(([id, cursor]) => [id, cursor.afterSeq]));

export const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);

/** A session plus everything it delivered, for assertions. */
export interface Recorded {
  chat: ChatClient;
  messages: Message[];
  /** Every event the session delivered, in order. */
  events: ChatEvent[];
  errors: ChatError[];
  /** Seqs delivered for one conversation, in delivery order. */
  seqs(conversationId: string): number[];
  /** Waits until `conversationId` has delivered at least up to `seq`. */
  until(conversationId: string, seq: number, timeoutMs?: number): Promise<void>;
  /** The messageChanged events of one message, in order. */
  changes(conversationId: string, seq: number): MessageChangedEvent[];
}

/** Fast retries for tests: reconnects within tens of milliseconds instead of seconds. */
export const FAST_RETRY = { initialDelayMs: 50, maxDelayMs: 500 };

export function open(url: string, options: Partial<ChatClientOptions> & Pick<ChatClientOptions, 'token' | 'getToken'>, sessions: ChatClient[]): Recorded {
  const chat = createChatClient({ url, webSocketImpl: WebSocket, retry: FAST_RETRY, keepAliveMs: 5000, ...options });
  sessions.push(chat);
  const messages: Message[] = [];
  const events: ChatEvent[] = [];
  const errors: ChatError[] = [];
  chat.onMessage((message) => messages.push(message));
  chat.onEvent((event) => events.push(event));
  chat.onError((error) => errors.push(error));
  const seqs = (conversationId: string) => messages.filter((m) => m.conversationId === conversationId).map((m) => m.seq);
  return {
    chat,
    messages,
    events,
    errors,
    seqs,
    changes: (conversationId, seq) =>
      events.filter((e): e is MessageChangedEvent => e.type === 'messageChanged' && e.conversationId === conversationId && e.seq === seq),
    until: (conversationId, seq, timeoutMs) =>
      waitFor(() => seqs(conversationId).includes(seq), `seq ${seq} of ${conversationId}`, timeoutMs, () => ({ seqs: seqs(conversationId), errors: errors.map((e) => `${e.code}: ${e.message}`) })),
  };
}

/** Opens a session for a user that exists on the server. */
export async function session(server: TestServer | { url: string }, id: string, sessions: ChatClient[], options: Partial<ChatClientOptions> = {}): Promise<Recorded> {
  const t = await token(id);
  return open(server.url, { token: t, ...options }, sessions);
}
