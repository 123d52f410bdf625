import type { ChatApi } from './api.js';
import type { ChatError } from './errors.js';
import type { InboxHandlers } from './inbox.js';
import type { Sequencer } from './sequencer.js';
import { catchUp } from './sync.js';
import { backoffDelay, sleep, type RetryOptions } from './timing.js';
import type { ChatEvent, ConnectionStatus, Conversation, Cursors } from './types.js';

export interface ResumerOptions {
  api: Pick<ChatApi, 'conversations'>;
  sequencer: Sequencer;
  /** Starts the inbox subscription from `cursors`; returns its unsubscribe. */
  subscribe(cursors: Cursors, handlers: InboxHandlers): () => void;
  emit(event: Exclude<ChatEvent, { type: 'message' }>): void;
  setStatus(status: ConnectionStatus): void;
  report(error: unknown): void;
  /** Unread messages delivered at most for a conversation joined while disconnected. */
  unreadLimit: number;
  retry: RetryOptions;
  signal: AbortSignal;
}

/** What the connection tells the resumer. */
export interface Resumer {
  /** A socket is up (first connect or reconnect): catch up, then subscribe. */
  connected(): void;
  /** The socket went away: stop everything started for it. */
  closed(): void;
}

/**
 * The per-connection procedure: catch up over HTTP (sync.ts), subscribe to
 * `inbox` from the cursors, then look once more for a conversation created
 * in between. Repeated on every reconnect, and when the subscription ends on
 * a healthy socket.
 *
 * Each connection, and each restart of the subscription, is an epoch. Work
 * started for an older epoch stops at its next step and events from its
 * subscription are ignored, so two connections' work never interleaves.
 */
export function createResumer(options: ResumerOptions): Resumer {
  const { sequencer, signal, retry } = options;
  let epoch = 0;
  let synced = false;
  /** Subscriptions that ended on a healthy socket since it connected: paces restarts. */
  let inboxFailures = 0;
  let stopInbox: (() => void) | undefined;
  const current = (e: number) => e === epoch && !signal.aborted;
  const stop = () => {
    stopInbox?.();
    stopInbox = undefined;
  };
  signal.addEventListener('abort', () => {
    epoch++;
    stop();
  });

  const handlers = (e: number): InboxHandlers => ({
    message: (message) => current(e) && sequencer.accept(message, 'live'),
    joined(conversationId, conversation, afterSeq) {
      // Already followed (caught up before subscribing, or announced twice): nothing to do.
      if (!current(e) || sequencer.has(conversationId)) return;
      // Messages after afterSeq follow on this stream (the server says exactly
      // where it starts). Unread ones before it are delivered too, as for a
      // conversation joined while disconnected: a message sent between the
      // join and the subscription starting must not become mere history.
      const start = conversation
        ? Math.min(afterSeq, Math.max(conversation.lastReadSeq, afterSeq - options.unreadLimit, 0))
        : afterSeq;
      sequencer.follow(conversationId, start);
      options.emit({ type: 'joined', conversationId, conversation });
      if (start < afterSeq) sequencer.catchUp(conversationId, afterSeq).catch((error: unknown) => current(e) && options.report(error));
    },
    left(conversationId, reason) {
      if (!current(e)) return;
      sequencer.forget(conversationId);
      options.emit({ type: 'left', conversationId, reason });
    },
    ended(error: ChatError) {
      if (!current(e)) return;
      options.report(error);
      stopInbox = undefined;
      const next = ++epoch;
      void sleep(backoffDelay(inboxFailures++, retry), { signal }).then(() => resume(next), () => {});
    },
  });

  async function resume(e: number): Promise<void> {
    const announce = { api: options.api, sequencer, unreadLimit: options.unreadLimit, stale: () => !current(e) };
    const onJoined = (conversation: Conversation) =>
      options.emit({ type: 'joined', conversationId: conversation.id, conversation });
    for (let failures = 0; current(e); failures++) {
      options.setStatus('syncing');
      try {
        await catchUp({ ...announce, announceNew: synced, onJoined });
        if (!current(e)) return;
        stopInbox = options.subscribe(sequencer.cursors(), handlers(e));
        // The subscription was asked to announce every conversation missing
        // from these cursors (with its exact starting seq), so one created or
        // joined since the list was read is not missed.
        synced = true;
        if (!current(e)) return;
        options.setStatus('live');
        return;
      } catch (error) {
        if (!current(e)) return;
        options.report(error);
        await sleep(backoffDelay(failures, retry), { signal }).catch(() => {});
      }
    }
  }

  return {
    connected() {
      const e = ++epoch;
      inboxFailures = 0;
      stop();
      void resume(e);
    },
    closed() {
      epoch++;
      stop();
      options.setStatus('connecting');
    },
  };
}
