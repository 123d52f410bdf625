import type { ReplyOptions } from './api.js';
import { ErrorCode, isChatError, isTransient, toChatError, type ChatError } from './errors.js';
import { abortReason, backoffDelay, createWakeSignal, sleep, type RetryOptions } from './timing.js';
import type { Message, PendingSend } from './types.js';

export interface ChangeOptions {
  /**
   * Stops retrying. An attempt already on the wire may still have been
   * applied; it then arrives like any other change.
   */
  signal?: AbortSignal;
}

export interface SendOptions extends ChangeOptions, ReplyOptions {
  /**
   * The idempotency key. Default: a random UUID. Pass your own to resend
   * after a reload (persist it with the draft): the server stores one
   * message per sender and id, so a resend of a stored message returns it.
   */
  clientMessageId?: string;
}

/**
 * A change's fencing token: this session's writer id and the attempt's
 * number, higher than any the session used before. The server refuses an
 * attempt (SUPERSEDED, nothing changed) when a later one of the same writer
 * already reached it, so a first attempt held up in an instance that stopped
 * answering cannot land after its retry and the changes that followed it.
 */
export interface ChangeFence {
  writer: string;
  token: number;
}

/** What an attempt knows of the one before it. */
export interface Attempt {
  /**
   * The previous attempt timed out or failed on the network: this one should
   * not reuse a pooled connection (it may be pinned to an instance that
   * stopped answering), so that it can land on another instance.
   */
  freshConnection: boolean;
  /** This attempt's fencing token (changes send it; sends need none: a late attempt finds its clientMessageId stored). */
  fence: ChangeFence;
}

export interface OutboxOptions {
  /** One attempt; rejects with a ChatError. */
  sendMessage(conversationId: string, body: string, clientMessageId: string, reply: ReplyOptions, attempt: Attempt): Promise<Message>;
  /**
   * A send or a change was acknowledged: the message as the server now
   * holds it. The call resolves once the session has taken it in (a send's
   * message delivered, when it is the next one).
   */
  onDone(message: Message, kind: 'send' | 'change'): void | Promise<void>;
  /**
   * A send's first attempt is going out: from now on the server may hold
   * the message. Followed by `onDone` (kind 'send') or `onSendFailed`.
   */
  onSendStarted(conversationId: string): void;
  /** A send that had been attempted was given up (its promise rejects). */
  onSendFailed(conversationId: string): void;
  onError(error: ChatError): void;
  retry: RetryOptions;
  signal: AbortSignal;
}

interface Entry {
  conversationId: string;
  /** Set for sends (what pendingSends lists); undefined for changes. */
  send: PendingSend | undefined;
  /** One attempt. */
  run(attempt: Attempt): Promise<Message>;
  resolve(message: Message): void;
  reject(error: ChatError): void;
  signal: AbortSignal | undefined;
}

/** Sends and changes with safe retries; see {@link createOutbox}. */
export interface Outbox {
  send(conversationId: string, body: string, options?: SendOptions): Promise<Message>;
  /**
   * A change to an existing message (edit, delete, reaction): `attempt` must
   * be idempotent, as the server's are (editing to the same body, deleting
   * twice, adding a reaction one has are no-ops), since a retry may follow an
   * attempt whose answer was lost; and it must send `attempt.fence`, so that
   * an earlier attempt arriving late changes nothing.
   */
  change(conversationId: string, attempt: (attempt: Attempt) => Promise<Message>, options?: ChangeOptions): Promise<Message>;
  pending(): PendingSend[];
  /** Retry waiting sends now (the network is back). */
  wake(): void;
}

function newClientMessageId(): string {
  return globalThis.crypto.randomUUID();
}

/**
 * Unacknowledged sends and message changes, retried until the server
 * answers: after a network failure or a request timeout (the answer may have
 * been lost after the write was done: a send is retried with the same
 * clientMessageId and gets the stored message back; a change is idempotent;
 * the retry goes out on a new connection), a RATE_LIMITED (after its
 * retryAfterMs), an unexpected server error, or a refused token (the HTTP
 * layer refreshes it). Errors that retrying cannot fix (FORBIDDEN,
 * NOT_FOUND, BAD_USER_INPUT) reject.
 *
 * Each conversation has its own queue, worked one entry at a time, so one
 * user's writes to a conversation happen in the order they were called, even
 * across retries: two edits of one message end with the second, a reaction
 * to a message being sent waits for it. Different conversations do not wait
 * for each other.
 */
export function createOutbox(options: OutboxOptions): Outbox {
  const queues = new Map<string, Entry[]>();
  // One writer per outbox (session); every attempt takes the next token, so
  // an attempt's token is above those of all attempts before it, retries included.
  const writer = newClientMessageId();
  let lastToken = 0;
  const wakeSignal = createWakeSignal();
  const { signal } = options;

  signal.addEventListener(
    'abort',
    () => {
      const error = abortReason(signal);
      for (const queue of queues.values()) for (const entry of queue.splice(0)) entry.reject(error);
      queues.clear();
    },
    { once: true },
  );

  async function work(conversationId: string, queue: Entry[]): Promise<void> {
    while (queue.length > 0 && !signal.aborted) {
      const entry = queue[0]!;
      try {
        entry.resolve(await attempt(entry));
      } catch (error) {
        if (entry.send && entry.send.attempts > 0) options.onSendFailed(conversationId);
        entry.reject(toChatError(error));
      }
      if (queue[0] === entry) queue.shift();
    }
    if (queues.get(conversationId) === queue && queue.length === 0) queues.delete(conversationId);
  }

  async function attempt(entry: Entry): Promise<Message> {
    let failures = 0;
    let networkFailed = false;
    for (;;) {
      if (signal.aborted) throw abortReason(signal);
      if (entry.signal?.aborted) throw abortReason(entry.signal);
      if (entry.send?.attempts === 0) options.onSendStarted(entry.conversationId);
      if (entry.send) entry.send.attempts++;
      try {
        const message = await entry.run({ freshConnection: networkFailed, fence: { writer, token: ++lastToken } });
        await options.onDone(message, entry.send ? 'send' : 'change');
        return message;
      } catch (raw) {
        const error = toChatError(raw);
        if (signal.aborted) throw abortReason(signal);
        networkFailed = isChatError(error, ErrorCode.NETWORK_ERROR);
        // UNAUTHENTICATED survives the HTTP layer's one refresh only when the
        // token source is briefly behind; keep the write and try later.
        if (!isTransient(error) && !isChatError(error, ErrorCode.UNAUTHENTICATED)) throw error;
        if (entry.signal?.aborted) throw abortReason(entry.signal);
        options.onError(error);
        const delay = error.retryAfterMs !== undefined ? error.retryAfterMs + Math.round(Math.random() * 100) : backoffDelay(failures++, options.retry);
        // A rate limit is not lifted by the network coming back: only a
        // network failure is worth cutting the wait short for.
        const wake = isChatError(error, ErrorCode.RATE_LIMITED) ? undefined : wakeSignal;
        await sleep(delay, { signal: [signal, entry.signal], wake });
      }
    }
  }

  function enqueue(conversationId: string, send: PendingSend | undefined, run: (attempt: Attempt) => Promise<Message>, entrySignal: AbortSignal | undefined): Promise<Message> {
    if (signal.aborted) return Promise.reject(abortReason(signal));
    return new Promise<Message>((resolve, reject) => {
      const entry: Entry = { conversationId, send, run, resolve, reject, signal: entrySignal };
      let queue = queues.get(conversationId);
      const idle = !queue;
      if (!queue) queues.set(conversationId, (queue = []));
      queue.push(entry);
      // Aborted while still queued behind another entry: drop it now. (The
      // entry in flight notices in its own loop.)
      entrySignal?.addEventListener(
        'abort',
        () => {
          const index = queue.indexOf(entry);
          if (index > 0) {
            queue.splice(index, 1);
            reject(abortReason(entrySignal));
          }
        },
        { once: true },
      );
      if (idle) void work(conversationId, queue);
    });
  }

  return {
    send(conversationId, body, sendOptions = {}) {
      const reply = { replyToSeq: sendOptions.replyToSeq ?? null, threadRootSeq: sendOptions.threadRootSeq ?? null };
      const pending: PendingSend = { conversationId, body, clientMessageId: sendOptions.clientMessageId ?? newClientMessageId(), ...reply, attempts: 0 };
      return enqueue(conversationId, pending, (attempt) => options.sendMessage(conversationId, body, pending.clientMessageId, reply, attempt), sendOptions.signal);
    },
    change(conversationId, run, changeOptions = {}) {
      return enqueue(conversationId, undefined, run, changeOptions.signal);
    },
    pending() {
      return [...queues.values()].flat().flatMap((entry) => (entry.send ? [{ ...entry.send }] : []));
    },
    wake() {
      wakeSignal.fire();
    },
  };
}
