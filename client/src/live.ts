import { stringifyDocument } from '@urql/core';
import type { Connection } from './connection.js';
import { ErrorCode, fromGraphQLError, isGone, toChatError, type ChatError } from './errors.js';
import { PresenceDocument, TypingDocument, type PresenceSubscription, type TypingSubscription } from './generated/graphql.js';
import type { PresenceEvent, TypingEvent, Unsubscribe } from './types.js';

/**
 * Presence and typing: ephemeral state, not stored, so there is nothing to
 * resume. Each feed is subscribed on every (re)connect (the presence
 * subscription starts with everyone's current state, so a reconnect also
 * repairs whatever changed while the socket was down) and dropped when the
 * socket closes, exactly like the events subscription.
 */
export interface LiveFeeds {
  /** `start` subscribes on the current socket and returns its stop. Runs now if connected, and after every reconnect. */
  add(start: () => () => void): Unsubscribe;
  connected(): void;
  closed(): void;
  /** The session is closing: stop everything for good. */
  dispose(): void;
}

export function createLiveFeeds(): LiveFeeds {
  const feeds = new Map<() => () => void, (() => void) | undefined>();
  let connected = false;
  return {
    add(start) {
      feeds.set(start, connected ? start() : undefined);
      return () => {
        feeds.get(start)?.();
        feeds.delete(start);
      };
    },
    connected() {
      connected = true;
      for (const [start, stop] of feeds) {
        stop?.();
        feeds.set(start, start());
      }
    },
    closed() {
      connected = false;
      for (const [start, stop] of feeds) {
        stop?.();
        feeds.set(start, undefined);
      }
    },
    dispose() {
      this.closed();
      feeds.clear();
    },
  };
}

/**
 * One subscription on the current socket. An error that will not go away
 * (FORBIDDEN: not a member, or no longer one; NOT_FOUND) ends the feed for
 * good through `gone`; anything else is reported and retried at the next
 * reconnect.
 */
function subscribeOnce<TData>(
  connection: Connection,
  payload: { query: string; variables: Record<string, unknown> },
  next: (data: TData) => void,
  report: (error: ChatError) => void,
  gone: (error: ChatError) => void,
): () => void {
  return connection.subscribe<TData>(payload, {
    next(result) {
      if (result.data) next(result.data);
      else if (result.errors?.[0]) {
        const error = fromGraphQLError(result.errors[0]);
        if (isGone(error)) gone(error);
        else report(error);
      }
    },
    error(raw) {
      const error = toChatError(raw);
      if (isGone(error)) gone(error);
      else report(error);
    },
    complete() {},
  });
}

const PRESENCE_QUERY = stringifyDocument(PresenceDocument);
const TYPING_QUERY = stringifyDocument(TypingDocument);

export interface LiveContext {
  connection: Connection;
  feeds: LiveFeeds;
  report(error: ChatError): void;
}

/** Presence events of a conversation's members, or of the viewer's contacts when `conversationId` is omitted. */
export function watchPresence(context: LiveContext, conversationId: string | undefined, listener: (event: PresenceEvent) => void): Unsubscribe {
  let stopped = false;
  const off = context.feeds.add(() =>
    subscribeOnce<PresenceSubscription>(
      context.connection,
      { query: PRESENCE_QUERY, variables: { conversationId: conversationId ?? null } },
      (data) => !stopped && listener(data.presence),
      context.report,
      (error) => {
        context.report(error);
        stop();
      },
    ),
  );
  const stop = () => {
    stopped = true;
    off();
  };
  return stop;
}

/** How long an indicator lasts when its expiresAt cannot be trusted (the server's is 6 s). */
const DEFAULT_TYPING_MS = 6_000;

/**
 * Who else is typing in a conversation, as a list that changes: a user is in
 * it from their `typing: true` until `typing: false` or until the indicator
 * expires without renewal. The listener gets the whole list on every change.
 */
export function watchTyping(context: LiveContext, conversationId: string, listener: (typing: TypingEvent['user'][]) => void): Unsubscribe {
  const typing = new Map<string, { user: TypingEvent['user']; timer: ReturnType<typeof setTimeout> }>();
  let stopped = false;
  const publish = () => !stopped && listener([...typing.values()].map((entry) => entry.user));
  const remove = (userId: string) => {
    const entry = typing.get(userId);
    if (!entry) return false;
    clearTimeout(entry.timer);
    typing.delete(userId);
    return true;
  };
  const clear = () => {
    if ([...typing.keys()].map(remove).some(Boolean)) publish();
  };
  const onEvent = (event: TypingEvent) => {
    const had = remove(event.user.id);
    if (event.typing) {
      // expiresAt is the server's clock; a client clock that is off by more
      // than the indicator's lifetime would make it vanish at once (or stick):
      // fall back to the server's default lifetime then.
      const left = Date.parse(event.expiresAt) - Date.now();
      const ms = left > 0 && left <= 60_000 ? left : DEFAULT_TYPING_MS;
      const timer = setTimeout(() => remove(event.user.id) && publish(), ms);
      typing.set(event.user.id, { user: event.user, timer });
      if (!had) publish();
    } else if (had) publish();
  };
  const off = context.feeds.add(() => {
    const stopSubscription = subscribeOnce<TypingSubscription>(
      context.connection,
      { query: TYPING_QUERY, variables: { conversationId } },
      (data) => !stopped && onEvent(data.typing),
      context.report,
      () => stop(), // the viewer left: nobody is typing for them any more
    );
    return () => {
      stopSubscription();
      // While the socket is down a "stopped typing" could be missed: forget everyone.
      clear();
    };
  });
  const stop = () => {
    clear();
    stopped = true;
    off();
  };
  return stop;
}

/** Renewals closer together than this are not sent (the server's indicator lasts 6 s). */
export const TYPING_RENEW_MS = 2_000;

/**
 * The viewer's own typing indicator: `typing()` on every keystroke sends
 * setTyping at most once per TYPING_RENEW_MS; `stop()` (after sending, or
 * when the input is cleared) withdraws it if one is showing. Failures are
 * reported, never thrown: an indicator is not worth an error in the UI.
 */
export function createTypingNotifier(setTyping: (conversationId: string, typing: boolean) => Promise<boolean>, report: (error: ChatError) => void) {
  const lastSent = new Map<string, number>();
  const send = (conversationId: string, typing: boolean) =>
    void setTyping(conversationId, typing).catch((error: unknown) => {
      const chatError = toChatError(error);
      // A burst of keystrokes can hit the server's limit; the next renewal fixes it.
      if (chatError.code !== ErrorCode.RATE_LIMITED && chatError.code !== ErrorCode.CLOSED) report(chatError);
    });
  return {
    typing(conversationId: string) {
      const now = Date.now();
      if (now - (lastSent.get(conversationId) ?? 0) < TYPING_RENEW_MS) return;
      lastSent.set(conversationId, now);
      send(conversationId, true);
    },
    stop(conversationId: string) {
      const sent = lastSent.get(conversationId);
      lastSent.delete(conversationId);
      if (sent !== undefined && Date.now() - sent < DEFAULT_TYPING_MS) send(conversationId, false);
    },
  };
}

/**
 * Read positions, moved forward without flooding the server: one markRead
 * in flight per conversation; calls made meanwhile collapse into one
 * follow-up with the highest seq; a seq at or below what was already sent is
 * ignored (the server never moves backward anyway).
 */
export function createReadMarker(markRead: (conversationId: string, seq: number) => Promise<unknown>, report: (error: ChatError) => void) {
  const sent = new Map<string, number>();
  const wanted = new Map<string, number>();
  const inFlight = new Set<string>();
  async function flush(conversationId: string) {
    inFlight.add(conversationId);
    try {
      for (;;) {
        const seq = wanted.get(conversationId);
        if (seq === undefined || seq <= (sent.get(conversationId) ?? 0)) return;
        try {
          await markRead(conversationId, seq);
          sent.set(conversationId, seq);
        } catch (error) {
          const chatError = toChatError(error);
          if (chatError.code !== ErrorCode.CLOSED) report(chatError);
          wanted.delete(conversationId); // the next call, even with the same seq, tries again
          return;
        }
      }
    } finally {
      inFlight.delete(conversationId);
    }
  }
  return (conversationId: string, seq: number) => {
    if (seq <= Math.max(sent.get(conversationId) ?? 0, wanted.get(conversationId) ?? 0)) return;
    wanted.set(conversationId, seq);
    if (!inFlight.has(conversationId)) void flush(conversationId);
  };
}

