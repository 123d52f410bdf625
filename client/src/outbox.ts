import { ErrorCode, isChatError, isTransient, toChatError, type ChatError } from './errors.js';
import { abortReason, backoffDelay, createWakeSignal, sleep, type RetryOptions } from './timing.js';
import type { Message, PendingSend } from './types.js';

export interface SendOptions {
  /**
   * The idempotency key. Default: a random UUID. Pass your own to resend
   * after a reload (persist it with the draft): the server stores one
   * message per sender and id, so a resend of a stored message returns it.
   */
  clientMessageId?: string;
  /**
   * Stops retrying. An attempt already on the wire may still have been
   * stored; it then arrives like any other message.
   */
  signal?: AbortSignal;
}

export interface OutboxOptions {
  /**
   * One attempt; rejects with a ChatError. `freshConnection`: the previous
   * attempt timed out or failed on the network, so this one should not reuse
   * a pooled connection (it may be pinned to an instance that stopped answering).
   */
  sendMessage(conversationId: string, body: string, clientMessageId: string, attempt: { freshConnection: boolean }): Promise<Message>;
  /** A send was acknowledged: the stored message. */
  onSent(message: Message): void;
  onError(error: ChatError): void;
  retry: RetryOptions;
  signal: AbortSignal;
}

interface Entry extends PendingSend {
  resolve(message: Message): void;
  reject(error: ChatError): void;
  signal: AbortSignal | undefined;
}

/** Sends with safe retries; see {@link createOutbox}. */
export interface Outbox {
  send(conversationId: string, body: string, options?: SendOptions): Promise<Message>;
  pending(): PendingSend[];
  /** Retry waiting sends now (the network is back). */
  wake(): void;
}

function newClientMessageId(): string {
  return globalThis.crypto.randomUUID();
}

/**
 * Unacknowledged sends, retried with the same clientMessageId until the
 * server answers: after a network failure or a request timeout (the answer
 * may have been lost after the message was stored: the retry then returns
 * the stored one; it goes out on a new connection), a
 * RATE_LIMITED (after its retryAfterMs), an unexpected server error, or a
 * refused token (the HTTP layer refreshes it). Errors that retrying cannot
 * fix (FORBIDDEN, NOT_FOUND, BAD_USER_INPUT) reject the send.
 *
 * Each conversation has its own queue, worked one send at a time, so the
 * messages of one sender are stored in the order `send` was called, even
 * across retries. Different conversations do not wait for each other.
 */
export function createOutbox(options: OutboxOptions): Outbox {
  const queues = new Map<string, Entry[]>();
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
      entry.attempts++;
      try {
        const message = await options.sendMessage(entry.conversationId, entry.body, entry.clientMessageId, { freshConnection: networkFailed });
        options.onSent(message);
        return message;
      } catch (raw) {
        const error = toChatError(raw);
        // A timeout or a broken connection: retry on a new connection, which
        // a load balancer may send to another instance. (After a server's
        // answer, such as RATE_LIMITED, the connection is fine.)
        networkFailed = isChatError(error, ErrorCode.NETWORK_ERROR);
        if (signal.aborted) throw abortReason(signal);
        // UNAUTHENTICATED survives the HTTP layer's one refresh only when the
        // token source is briefly behind; keep the message and try later.
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

  return {
    send(conversationId, body, sendOptions = {}) {
      if (signal.aborted) return Promise.reject(abortReason(signal));
      return new Promise<Message>((resolve, reject) => {
        const entry: Entry = {
          conversationId,
          body,
          clientMessageId: sendOptions.clientMessageId ?? newClientMessageId(),
          attempts: 0,
          resolve,
          reject,
          signal: sendOptions.signal,
        };
        let queue = queues.get(conversationId);
        const idle = !queue;
        if (!queue) queues.set(conversationId, (queue = []));
        queue.push(entry);
        // Aborted while still queued behind another send: drop it now. (The
        // send in flight notices in its own loop.)
        const abortSignal = sendOptions.signal;
        abortSignal?.addEventListener(
          'abort',
          () => {
            const index = queue.indexOf(entry);
            if (index > 0) {
              queue.splice(index, 1);
              reject(abortReason(abortSignal));
            }
          },
          { once: true },
        );
        if (idle) void work(conversationId, queue);
      });
    },
    pending() {
      return [...queues.values()].flat().map(({ conversationId, body, clientMessageId, attempts }) => ({ conversationId, body, clientMessageId, attempts }));
    },
    wake() {
      wakeSignal.fire();
    },
  };
}
