import type { ChatApi } from './api.js';
import { ErrorCode, isChatError, isGone, isTransient, toChatError, type ChatError } from './errors.js';
import type { Sequencer } from './sequencer.js';
import type { StreamHandlers } from './stream.js';
import { catchUp } from './sync.js';
import { backoffDelay, sleep, type RetryOptions } from './timing.js';
import type { ConnectionStatus, Conversation, JoinedEvent, LeftEvent } from './types.js';

export interface ResumerOptions {
  api: Pick<ChatApi, 'conversations' | 'conversation'>;
  sequencer: Sequencer;
  /** Starts the events subscription from these cursors; returns its unsubscribe. */
  subscribe(cursors: { conversationId: string; afterEventSeq: number }[], handlers: StreamHandlers): () => void;
  /** Runs before the first sync (reads the viewer once). */
  prepare(): Promise<void>;
  emit(event: JoinedEvent | LeftEvent): void;
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
 * `events` from the event cursors, and let the server announce any
 * conversation created in between. Repeated on every reconnect, and when the
 * subscription ends on a healthy socket.
 *
 * Catching up over HTTP first, rather than letting the subscription do it
 * from the same cursors, is deliberate: eventsSince pages a long absence
 * instead of pushing it down the socket at once, and, being a query, tells
 * which reactions are the viewer's own (a live payload does not, or the
 * server would have to render it per subscriber). The subscription then
 * starts at the cursor the catch-up reached, so its own catch-up is only
 * what changed in between.
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
  let streamFailures = 0;
  let stopStream: (() => void) | undefined;
  const current = (e: number) => e === epoch && !signal.aborted;
  const stop = () => {
    stopStream?.();
    stopStream = undefined;
  };
  signal.addEventListener('abort', () => {
    epoch++;
    stop();
  });

  /**
   * A conversation joined live: read it (the stream carries only positions,
   * so that its events stay free of viewer-dependent fields), announce it,
   * then let its events and messages flow. The conversation's events wait
   * meanwhile (its track is paused), so `joined` comes first.
   */
  async function announce(conversationId: string, afterSeq: number): Promise<void> {
    let conversation: Conversation | null = null;
    for (let failures = 0; !signal.aborted; failures++) {
      try {
        conversation = await options.api.conversation(conversationId);
        break;
      } catch (raw) {
        const error = toChatError(raw);
        if (signal.aborted || isGone(error)) break; // already left again: ConversationLeft follows
        options.report(error);
        if (!isTransient(error) && !isChatError(error, ErrorCode.UNAUTHENTICATED)) break;
        await sleep(backoffDelay(failures, retry), { signal }).catch(() => {});
      }
    }
    if (signal.aborted || !sequencer.has(conversationId)) return; // left meanwhile
    if (conversation) {
      // Messages after afterSeq follow on the stream. Unread ones before it
      // are delivered too, as for a conversation joined while disconnected:
      // a message sent between the join and the subscription starting must
      // not become mere history.
      sequencer.lowerMessageCursor(conversationId, Math.min(afterSeq, Math.max(conversation.lastReadSeq, afterSeq - options.unreadLimit, 0)));
      sequencer.noteTitle(conversationId, conversation.title);
    }
    options.emit({ type: 'joined', conversationId, conversation });
    sequencer.resume(conversationId);
  }

  const handlers = (e: number): StreamHandlers => ({
    event: (event) => current(e) && sequencer.accept(event),
    joined(conversationId, afterSeq, afterEventSeq) {
      if (!current(e)) return;
      // Already followed (caught up before subscribing, or announced twice):
      // nothing to do, unless its cursor was an 0.1 one still unplaced.
      if (sequencer.has(conversationId)) {
        sequencer.placeIfUnplaced(conversationId, afterEventSeq, afterSeq);
        return;
      }
      sequencer.follow(conversationId, { eventCursor: afterEventSeq, messageCursor: afterSeq, historyUntil: afterSeq, paused: true });
      void announce(conversationId, afterSeq);
    },
    left(conversationId, reason) {
      if (!current(e)) return;
      sequencer.forget(conversationId);
      options.emit({ type: 'left', conversationId, reason });
    },
    ended(error: ChatError) {
      if (!current(e)) return;
      options.report(error);
      stopStream = undefined;
      const next = ++epoch;
      void sleep(backoffDelay(streamFailures++, retry), { signal }).then(() => resume(next), () => {});
    },
  });

  async function resume(e: number): Promise<void> {
    const announceOptions = { api: options.api, sequencer, unreadLimit: options.unreadLimit, stale: () => !current(e) };
    const onJoined = (conversation: Conversation) => options.emit({ type: 'joined', conversationId: conversation.id, conversation });
    for (let failures = 0; current(e); failures++) {
      options.setStatus('syncing');
      try {
        await options.prepare();
        if (!current(e)) return;
        await catchUp({ ...announceOptions, announceNew: synced, onJoined });
        if (!current(e)) return;
        stopStream = options.subscribe(sequencer.eventCursors(), handlers(e));
        // The subscription was asked to announce every conversation missing
        // from these cursors (with its exact starting positions), so one
        // created or joined since the list was read is not missed.
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
      streamFailures = 0;
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
