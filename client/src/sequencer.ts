import type { ChatApi, EventsSincePage, LogEvent } from './api.js';
import { ErrorCode, isChatError, isGone, isTransient, toChatError, type ChatError } from './errors.js';
import type { EventsSubscription } from './generated/graphql.js';
import type { MemberOp } from './model.js';
import type { LocalStore } from './model.js';
import { backoffDelay, sleep, type RetryOptions } from './timing.js';
import type { ChatEvent, Conversation, Cursors, LocalMember, Message, MessageChange } from './types.js';

/** A conversation event as the live `events` subscription carries it (no viewer-dependent fields). */
export type StreamEvent = Exclude<EventsSubscription['events'], { __typename: 'ConversationJoined' | 'ConversationLeft' }>;

/** Where a conversation stands on the server, as the conversation list (or `conversation`) reads it. */
export type Positions = Pick<Conversation, 'lastEventSeq' | 'lastSeq' | 'title'>;

export interface SequencerOptions {
  api: Pick<ChatApi, 'eventsSince' | 'messagesSince' | 'messages' | 'members' | 'conversation'>;
  store: LocalStore;
  /** The signed-in user's id once known: tells the viewer's own reactions in live events. */
  viewerId(): string | undefined;
  /** Called with everything the session delivers, in order. */
  emit(event: ChatEvent): void;
  /** A conversation's members or read positions changed in the model. */
  membersChanged(conversationId: string): void;
  /** Some cursor moved, appeared or went away. */
  onCursorsChange(): void;
  /** Catching up found that the viewer is no longer in the conversation. */
  onGone(conversationId: string): void;
  onError(error: ChatError): void;
  pageSize: number;
  retry: RetryOptions;
  /** The session's lifetime: aborting stops every catch-up. */
  signal: AbortSignal;
}

interface Pause {
  promise: Promise<void>;
  resolve(): void;
}

interface Track {
  readonly id: string;
  /** Highest event number applied. Undefined for an SDK 0.1 cursor until a sync places it. */
  eventCursor: number | undefined;
  /** Highest message seq delivered as a `message` event, with nothing missing before it. */
  messageCursor: number;
  /**
   * Messages up to here that are beyond messageCursor may not come through
   * the event log (they were sent before its cursor: unread messages of a
   * conversation joined while offline, an 0.1 cursor): messagesSince fetches
   * whichever the model is missing.
   */
  historyUntil: number;
  /** Live events ahead of a gap (or waiting for a pause to end), by event number. */
  held: Map<number, StreamEvent>;
  /** Catch the event log up at least to here (an event seen ahead of a gap, or the list's lastEventSeq). */
  target: number;
  catchingUp: Promise<void> | undefined;
  filling: Promise<void> | undefined;
  /** Set while `holds` is not empty: nothing is applied or delivered until it resolves. */
  paused: Pause | undefined;
  /**
   * Why the track is paused: its join is being announced (`resume` ends
   * that), or it was followed while our own send to it was on the wire, from
   * a position that may already include that message (the send's answer or
   * failure ends that; see `acceptSent`).
   */
  holds: Set<'announcing' | 'own send'>;
}

/** Live events held ahead of a gap per conversation; beyond this they are fetched again instead. */
const MAX_HELD = 1000;

function pause(): Pause {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/**
 * What a message event did to a message the session had delivered. A
 * compacted entry says UPDATED (changed since sent): what the model held
 * tells whether that included an edit.
 */
function changeOf(action: string, before: Message | undefined, after: Message): MessageChange {
  switch (action) {
    case 'EDITED':
    case 'DELETED':
    case 'REACTION_ADDED':
    case 'REACTION_REMOVED':
      return action;
    default:
      if (after.deletedAt) return 'DELETED';
      if (after.editedAt && after.editedAt !== before?.editedAt) return 'EDITED';
      // Reactions or a thread reply.
      return 'UPDATED';
  }
}

const sameReactions = (a: Message, b: Message) => JSON.stringify(a.reactions) === JSON.stringify(b.reactions);

/**
 * Turns each conversation's event log, arriving from several sources (the
 * live `events` subscription, eventsSince pages, answers to our own writes,
 * history reads), into one ordered application per conversation: every
 * event exactly once, in ascending number, and every message delivered once
 * as a `message` event in seq order. The model (model.ts) is what it applies
 * them to.
 *
 * - Event numbers are 1, 2, 3, … without gaps on the server; the live stream
 *   sends them in order. Anything at or below the cursor is a duplicate and
 *   dropped. A live event beyond cursor + 1 is held while eventsSince fills
 *   what lies between, unless it is compacted (`catchUp`): those may skip
 *   numbers whose effect a later change superseded, and that is no gap.
 * - eventsSince pages are compacted and complete up to `nextAfterEventSeq`:
 *   applying one moves the cursor there, whatever numbers it skipped.
 * - A message is new to the session when its seq is above the message
 *   cursor; it is delivered once every seq before it has been, so
 *   `onMessage` sees seqs in order although a compacted catch-up can bring
 *   them out of order (an older message edited after a newer one was sent).
 */
export class Sequencer {
  private readonly tracks = new Map<string, Track>();
  private readonly options: SequencerOptions;
  /** Our own sends to conversations not followed yet (just started): the lowest seq each. */
  private readonly sentBefore = new Map<string, number>();
  /** Our own sends on the wire (attempted, not yet answered or given up), per conversation. */
  private readonly sending = new Map<string, number>();
  private readonly membersLoading = new Map<string, { promise: Promise<LocalMember[]>; keep: boolean }>();
  private readonly verifying = new Set<string>();

  constructor(options: SequencerOptions) {
    this.options = options;
  }

  /** Cursors of every followed conversation: where a resume starts. */
  cursors(): Cursors {
    const cursors: Cursors = {};
    for (const [conversationId, track] of this.tracks) {
      cursors[conversationId] = track.eventCursor === undefined ? { afterSeq: track.messageCursor } : { afterEventSeq: track.eventCursor, afterSeq: track.messageCursor };
    }
    return cursors;
  }

  /** The event cursors to subscribe from (conversations whose cursor is placed). */
  eventCursors(): { conversationId: string; afterEventSeq: number }[] {
    return [...this.tracks.values()].flatMap((t) => (t.eventCursor === undefined ? [] : [{ conversationId: t.id, afterEventSeq: t.eventCursor }]));
  }

  has(conversationId: string): boolean {
    return this.tracks.has(conversationId);
  }

  /**
   * Starts following a conversation (no-op if already followed):
   * `eventCursor` is where its event log resumes (undefined: an 0.1 cursor,
   * placed by the next sync), `messageCursor` the last seq considered
   * delivered, `historyUntil` the last seq to fetch by messagesSince if the
   * event log does not bring it. `paused`: hold everything until `resume`.
   */
  follow(conversationId: string, start: { eventCursor?: number; messageCursor: number; historyUntil?: number; paused?: boolean }): void {
    if (this.tracks.has(conversationId)) return;
    let messageCursor = start.messageCursor;
    const historyUntil = Math.max(start.historyUntil ?? messageCursor, messageCursor);
    // Our own messages to it, sent before we followed it (a conversation we
    // just started), are delivered like everyone's, with whatever came
    // between the cursor and them.
    const sent = this.sentBefore.get(conversationId);
    this.sentBefore.delete(conversationId);
    if (sent !== undefined && sent - 1 < messageCursor) messageCursor = sent - 1;
    const track: Track = {
      id: conversationId,
      eventCursor: start.eventCursor,
      messageCursor,
      historyUntil,
      held: new Map(),
      target: start.eventCursor ?? 0,
      catchingUp: undefined,
      filling: undefined,
      paused: undefined,
      holds: new Set(),
    };
    if (start.paused) this.hold(track, 'announcing');
    // Our own send to it is on the wire: the position we start from may
    // already include that message, which the session must still deliver
    // (before send() resolves, as always). Wait for the answer to know.
    if (this.sending.has(conversationId)) this.hold(track, 'own send');
    this.tracks.set(conversationId, track);
    this.options.onCursorsChange();
    this.drain(track);
  }

  /** Stops following (the viewer left) and drops the conversation's model; ongoing catch-ups notice and stop. */
  forget(conversationId: string): void {
    const track = this.tracks.get(conversationId);
    if (!track) return;
    this.tracks.delete(conversationId);
    track.paused?.resolve();
    this.options.store.drop(conversationId);
    this.options.onCursorsChange();
  }

  /** A joined conversation starts its messages earlier than announced: deliver its unread ones too. */
  lowerMessageCursor(conversationId: string, seq: number): void {
    const track = this.tracks.get(conversationId);
    if (!track || seq >= track.messageCursor) return;
    track.historyUntil = Math.max(track.historyUntil, track.messageCursor);
    track.messageCursor = seq;
    this.options.onCursorsChange();
  }

  /** The join is announced: unless our own send holds it too, applies what was held, delivers, fetches what is missing. */
  resume(conversationId: string): void {
    const track = this.tracks.get(conversationId);
    if (track) this.release(track, 'announcing');
  }

  private hold(track: Track, reason: 'announcing' | 'own send'): void {
    track.holds.add(reason);
    track.paused ??= pause();
  }

  private release(track: Track, reason: 'announcing' | 'own send'): void {
    if (!track.holds.delete(reason) || track.holds.size > 0) return;
    const paused = track.paused;
    track.paused = undefined;
    paused?.resolve();
    this.pump(track);
    this.drain(track);
  }

  /**
   * Our own send's first attempt is going out: until its answer reaches
   * `acceptSent` (or `sendFailed`), the server may hold the message without
   * the session knowing its seq. The outbox sends one message at a time per
   * conversation, so a track never waits for a send queued behind another.
   */
  sendStarted(conversationId: string): void {
    this.sending.set(conversationId, (this.sending.get(conversationId) ?? 0) + 1);
  }

  /** A started send was given up (its promise rejected): nothing of it to wait for. */
  sendFailed(conversationId: string): void {
    this.sendSettled(conversationId);
  }

  private sendSettled(conversationId: string): void {
    const left = (this.sending.get(conversationId) ?? 1) - 1;
    if (left > 0) {
      this.sending.set(conversationId, left);
      return;
    }
    this.sending.delete(conversationId);
    const track = this.tracks.get(conversationId);
    if (track) this.release(track, 'own send');
  }

  /**
   * Compares a followed conversation with where the server says it stands
   * (the list read at a reconnect) and fetches the difference: the event log
   * after the cursor, then any message up to `lastSeq` the model still lacks.
   * Resolves when done or abandoned, never rejects.
   */
  async sync(conversationId: string, server: Positions): Promise<void> {
    const track = this.tracks.get(conversationId);
    if (!track) return;
    const model = this.options.store.model(conversationId);
    if (model.title === undefined) model.title = server.title;
    if (track.eventCursor === undefined) this.place(track, server.lastEventSeq, server.lastSeq);
    else if (server.lastEventSeq > track.eventCursor) await this.catchUp(conversationId, server.lastEventSeq);
    // Behind our cursor: a stale read, or a cursor from another database. eventsSince from the cursor tells which.
    else if (server.lastEventSeq < track.eventCursor) await this.catchUp(conversationId);
    if (this.tracks.get(conversationId) !== track) return;
    // Messages sent before the event cursor and never delivered (a cursor
    // saved while unread ones were still being fetched): fetch them now.
    track.historyUntil = Math.max(track.historyUntil, server.lastSeq);
    this.drain(track);
    await track.filling;
  }

  /** A followed conversation missing from the conversation list: gone (left while away), or it slipped between pages. */
  async recheck(conversationId: string): Promise<void> {
    const track = this.tracks.get(conversationId);
    if (!track) return;
    let conversation: Conversation;
    try {
      conversation = await this.options.api.conversation(conversationId);
    } catch (raw) {
      const error = toChatError(raw);
      if (isGone(error) && this.tracks.get(conversationId) === track) this.gone(track);
      else if (!this.options.signal.aborted) this.options.onError(error);
      return;
    }
    await this.sync(conversationId, conversation);
  }

  /** The title as read over HTTP, unless an event has set it already. */
  noteTitle(conversationId: string, title: string | null): void {
    const model = this.options.store.model(conversationId);
    if (model.title === undefined) model.title = title;
  }

  /** The server announced a followed conversation (no cursor was given for it): place an 0.1 cursor there. */
  placeIfUnplaced(conversationId: string, afterEventSeq: number, afterSeq: number): void {
    const track = this.tracks.get(conversationId);
    if (track && track.eventCursor === undefined) this.place(track, afterEventSeq, afterSeq);
  }

  private place(track: Track, lastEventSeq: number, lastSeq: number): void {
    track.eventCursor = lastEventSeq;
    track.target = lastEventSeq;
    // A cursor beyond the conversation (saved against another database): start again from what it holds.
    if (track.messageCursor > lastSeq) track.messageCursor = lastSeq;
    track.historyUntil = Math.max(track.historyUntil, lastSeq);
    this.options.onCursorsChange();
    this.drain(track);
  }

  /** An event from the live subscription. */
  accept(event: StreamEvent): void {
    const track = this.tracks.get(event.conversationId);
    // Not followed: the viewer left it (its last events can trail the
    // departure), or its cursor is not placed yet (the subscription was not
    // given one; its events come through the sync).
    if (!track || track.eventCursor === undefined || event.eventSeq <= track.eventCursor) return;
    if (track.held.size >= MAX_HELD) {
      void this.catchUp(track.id, event.eventSeq);
      return;
    }
    track.held.set(event.eventSeq, event);
    this.pump(track);
  }

  /**
   * A message read over HTTP (our own send's answer, a change's answer, a
   * history page): its state goes into the model if it is newer; a message
   * the session has not delivered yet is delivered when its turn comes.
   */
  acceptMessage(message: Message): void {
    this.options.store.model(message.conversationId).put(message, true);
    const track = this.tracks.get(message.conversationId);
    if (track) this.drain(track);
  }

  /**
   * Our own send's answer. Usually the message is the conversation's next
   * one: it is delivered now, before `send()` resolves, rather than after its
   * round trip through the subscription. In a conversation the session does
   * not follow yet (one just started, whose announcement is still on its
   * way), it first reads where the conversation stands and follows it from
   * there, our message included; in one being announced, it waits for that.
   * In one the session started following while the send was on the wire
   * (the first sync's list or the subscription's announcement, read after
   * the message was stored), the start moves back to just before our
   * message: nothing was delivered meanwhile (the track was held), so what
   * lies between is delivered once, in order, ours first.
   */
  async acceptSent(message: Message): Promise<void> {
    const { conversationId } = message;
    this.options.store.model(conversationId).put(message, true);
    const started = this.tracks.get(conversationId);
    if (started?.holds.has('own send') && message.seq <= started.messageCursor) {
      started.historyUntil = Math.max(started.historyUntil, started.messageCursor);
      started.messageCursor = message.seq - 1;
      this.options.onCursorsChange();
    }
    this.sendSettled(conversationId);
    if (!this.tracks.has(conversationId)) {
      this.sentBefore.set(conversationId, Math.min(message.seq, this.sentBefore.get(conversationId) ?? Number.POSITIVE_INFINITY));
      let conversation: Conversation;
      try {
        conversation = await this.options.api.conversation(conversationId);
      } catch {
        return; // the next sync (or the announcement) follows it, our message included
      }
      this.follow(conversationId, { eventCursor: conversation.lastEventSeq, messageCursor: conversation.lastSeq, historyUntil: conversation.lastSeq });
      this.noteTitle(conversationId, conversation.title);
    }
    const track = this.tracks.get(conversationId);
    if (track?.paused) await track.paused.promise;
    if (track && this.tracks.get(conversationId) === track) {
      this.drain(track);
      // Messages before ours still being fetched (a conversation just followed): ours comes after them.
      if (track.messageCursor < message.seq) await track.filling;
    }
  }

  /**
   * Every member with their read position, kept current by the event log
   * from now on if the conversation is followed (a list read for one that
   * is not could miss a change made before its cursor is placed: it is
   * returned, not kept).
   */
  loadMembers(conversationId: string): Promise<LocalMember[]> {
    const known = this.options.store.members(conversationId);
    if (known) return Promise.resolve(known);
    const track = this.tracks.get(conversationId);
    const keep = track?.eventCursor !== undefined;
    // Share a read in flight, unless it will not be kept and this one would.
    const loading = this.membersLoading.get(conversationId);
    if (loading && (loading.keep || !keep)) return loading.promise;
    const model = this.options.store.model(conversationId);
    if (keep) model.startLoadingMembers();
    const promise = (async () => {
      const read: LocalMember[] = [];
      try {
        let after: string | null = null;
        for (;;) {
          const page = await this.options.api.members(conversationId, { first: 500, after });
          read.push(...page.members.map((m) => ({ user: m.user, role: m.role, lastReadSeq: m.lastReadSeq })));
          if (!page.hasNextPage) break;
          after = page.endCursor;
        }
      } catch (error) {
        if (keep) model.abortLoadingMembers();
        throw error;
      }
      if (!keep) return read;
      if (this.tracks.get(conversationId) !== track || this.options.store.peek(conversationId) !== model) {
        model.abortLoadingMembers();
        return read;
      }
      model.finishLoadingMembers(read);
      return this.options.store.members(conversationId)!;
    })().finally(() => {
      if (this.membersLoading.get(conversationId)?.promise === promise) this.membersLoading.delete(conversationId);
    });
    this.membersLoading.set(conversationId, { promise, keep });
    return promise;
  }

  /**
   * Fetches the event log with eventsSince until the cursor reaches `until`
   * (default: the conversation's last event when the first page is read).
   * One catch-up per conversation at a time: callers share it, and a higher
   * target extends it. Transient failures are retried with backoff; a
   * conversation the viewer lost is forgotten (onGone). Resolves when done
   * or abandoned, never rejects.
   */
  catchUp(conversationId: string, until?: number): Promise<void> {
    const track = this.tracks.get(conversationId);
    if (!track || track.eventCursor === undefined) return Promise.resolve();
    track.target = until === undefined ? Number.POSITIVE_INFINITY : Math.max(track.target, until);
    if (!track.catchingUp) {
      const from = track.eventCursor;
      track.catchingUp = this.fillEvents(track).finally(() => {
        track.catchingUp = undefined;
        // Apply what was held behind the gap; without progress (a failure
        // that retrying cannot fix) wait for the next sync instead of spinning.
        if (track.eventCursor !== from) this.pump(track);
      });
    }
    return track.catchingUp;
  }

  /** Applies held live events in order, as far as they follow the cursor; a gap starts a catch-up. */
  private pump(track: Track): void {
    while (!track.paused && this.tracks.get(track.id) === track && track.held.size > 0) {
      const next = Math.min(...track.held.keys());
      const event = track.held.get(next)!;
      const cursor = track.eventCursor!;
      if (next <= cursor) {
        track.held.delete(next);
        continue;
      }
      if (next !== cursor + 1 && !event.catchUp) {
        void this.catchUp(track.id, next - 1);
        return;
      }
      track.held.delete(next);
      this.apply(track, event, false);
      this.options.onCursorsChange();
    }
  }

  private async fillEvents(track: Track): Promise<void> {
    const { api, signal, pageSize } = this.options;
    let failures = 0;
    for (;;) {
      if (track.paused) await track.paused.promise;
      const asked = track.eventCursor;
      if (this.tracks.get(track.id) !== track || signal.aborted || asked === undefined || asked >= track.target) return;
      let page: EventsSincePage;
      try {
        page = await api.eventsSince(track.id, asked, { first: pageSize });
        failures = 0;
      } catch (raw) {
        const error = toChatError(raw);
        if (signal.aborted || this.tracks.get(track.id) !== track) return;
        if (isGone(error)) {
          this.gone(track);
          return;
        }
        if (isChatError(error, ErrorCode.BAD_USER_INPUT) && error.field === 'afterEventSeq') {
          if (await this.rewind(track, asked)) continue;
          return;
        }
        this.options.onError(error);
        // Anything else retrying cannot fix: give up until the next sync
        // (a reconnect) tries again, rather than hammer the server.
        if (!isTransient(error) && !isChatError(error, ErrorCode.UNAUTHENTICATED)) return;
        try {
          await sleep(error.retryAfterMs ?? backoffDelay(failures++, this.options.retry), { signal });
        } catch {
          return; // closed
        }
        continue;
      }
      if (track.paused) await track.paused.promise;
      if (this.tracks.get(track.id) !== track) return;
      if (!Number.isFinite(track.target)) track.target = page.lastEventSeq;
      for (const event of page.events) {
        // The live stream may have applied some meanwhile.
        if (event.eventSeq > track.eventCursor!) this.apply(track, event, true);
        if (this.tracks.get(track.id) !== track) return;
      }
      // Complete up to here, whatever numbers compaction skipped.
      if (page.nextAfterEventSeq > track.eventCursor!) track.eventCursor = page.nextAfterEventSeq;
      this.options.onCursorsChange();
      // No progress although we are behind the target: the target was beyond
      // what the server holds. Stop rather than spin.
      if (track.eventCursor === asked) {
        track.target = asked;
        return;
      }
    }
  }

  /**
   * The server refused our event cursor as beyond its log (a cursor restored
   * against another database). Resuming from it would drop every new event
   * as a duplicate, so start again from where the conversation stands, with
   * an empty model. Only if the cursor is still the one refused: one that
   * moved since was moved by real events. False: give up for now.
   */
  private async rewind(track: Track, refused: number): Promise<boolean> {
    let conversation: Conversation;
    try {
      conversation = await this.options.api.conversation(track.id);
    } catch (error) {
      this.options.onError(toChatError(error));
      return false;
    }
    if (this.tracks.get(track.id) !== track) return false;
    if (track.eventCursor === refused && refused > conversation.lastEventSeq) {
      track.eventCursor = conversation.lastEventSeq;
      track.target = conversation.lastEventSeq;
      track.held.clear();
      track.messageCursor = Math.min(track.messageCursor, conversation.lastSeq);
      track.historyUntil = Math.min(track.historyUntil, conversation.lastSeq);
      this.options.store.drop(track.id);
      this.options.store.model(track.id).title = conversation.title;
      this.options.onCursorsChange();
    }
    return true;
  }

  private gone(track: Track): void {
    this.forget(track.id);
    this.options.onGone(track.id);
  }

  /** Applies one event (the caller checked it is the next one) and delivers what it made deliverable. */
  private apply(track: Track, event: StreamEvent | LogEvent, authoritative: boolean): void {
    track.eventCursor = event.eventSeq;
    const model = this.options.store.model(track.id);
    const { emit } = this.options;
    switch (event.__typename) {
      case 'MessageEvent': {
        const seq = event.message.seq;
        const known = model.messages.get(seq);
        // Compacted live events carry no actor: if their reactions moved, the
        // viewer's own may have too (from another device), so ask.
        const uncertain = !authoritative && event.catchUp && event.message.reactions.length > 0 && model.reactionsDiffer(event.message);
        const message = model.put(authoritative ? (event.message as Message) : model.withViewerFlags(event.message, this.options.viewerId(), event), authoritative);
        const root = event.threadRoot
          ? model.put(authoritative ? (event.threadRoot as Message) : model.withViewerFlags(event.threadRoot, this.options.viewerId()), authoritative)
          : undefined;
        // Sending moves the sender's read position to the message (within its event).
        this.readMoved(track, model.applyMemberOp({ kind: 'read', user: message.sender, lastReadSeq: seq }));
        const common = { conversationId: track.id, actor: event.actor, eventSeq: event.eventSeq, catchUp: event.catchUp };
        // A message already delivered changed. (Its own SENT, after we
        // delivered it from our send's answer, is no change.)
        if (seq <= track.messageCursor && !(event.action === 'SENT' && known && known.eventSeq >= event.message.eventSeq)) {
          emit({ type: 'messageChanged', seq, message, action: changeOf(event.action, known, message), reaction: event.reaction, ...common });
        }
        this.drain(track);
        if (this.tracks.get(track.id) !== track) return;
        if (root && root.seq <= track.messageCursor) emit({ type: 'messageChanged', seq: root.seq, message: root, action: 'THREAD_REPLIED', reaction: null, ...common });
        if (uncertain) this.verify(track.id, seq);
        return;
      }
      case 'MemberEvent': {
        const action = event.action === 'JOINED' || event.action === 'LEFT' ? event.action : 'REMOVED';
        // A newcomer has read what was there when they joined (the server sets it so).
        const op: MemberOp =
          action === 'JOINED'
            ? { kind: 'join', user: event.user, role: event.role ?? 'MEMBER', lastReadSeq: model.lastSeq }
            : { kind: 'leave', user: event.user, newOwner: event.newOwner };
        const changed = model.applyMemberOp(op);
        emit({ type: 'member', conversationId: track.id, action, user: event.user, role: event.role, newOwner: event.newOwner, eventSeq: event.eventSeq, catchUp: event.catchUp });
        this.readMoved(track, changed);
        return;
      }
      case 'ReadReceipt': {
        const changed = model.applyMemberOp({ kind: 'read', user: event.user, lastReadSeq: event.lastReadSeq });
        emit({ type: 'receipt', conversationId: track.id, user: event.user, lastReadSeq: event.lastReadSeq, eventSeq: event.eventSeq, catchUp: event.catchUp });
        this.readMoved(track, changed);
        return;
      }
      case 'ConversationRenamed':
        model.title = event.title;
        emit({ type: 'renamed', conversationId: track.id, title: event.title, eventSeq: event.eventSeq, catchUp: event.catchUp });
        return;
    }
  }

  private readMoved(track: Track, changed: boolean): void {
    if (changed && this.tracks.get(track.id) === track) this.options.membersChanged(track.id);
  }

  /**
   * Reads one message over HTTP for the viewer's own reaction flags (a
   * compacted live event does not say who reacted). Rare: only compacted
   * events on the live stream (the moment between catch-up and subscribing,
   * or a gap the server repaired) whose reactions moved.
   */
  private verify(conversationId: string, seq: number): void {
    const key = `${conversationId}\n${seq}`;
    if (this.verifying.has(key)) return;
    this.verifying.add(key);
    this.options.api
      .messages(conversationId, { before: seq + 1, last: 1 })
      .then(
        ({ messages }) => {
          const read = messages.find((m) => m.seq === seq);
          const track = this.tracks.get(conversationId);
          const model = this.options.store.peek(conversationId);
          if (!read || !track || !model) return;
          const before = model.messages.get(seq);
          const now = model.put(read, true);
          if (now === read && before && seq <= track.messageCursor && !sameReactions(before, now)) {
            this.options.emit({ type: 'messageChanged', conversationId, seq, message: now, action: 'UPDATED', actor: null, reaction: null, eventSeq: now.eventSeq, catchUp: true });
          }
        },
        (error: unknown) => {
          const chatError = toChatError(error);
          if (!isGone(chatError) && !this.options.signal.aborted) this.options.onError(chatError);
        },
      )
      .finally(() => this.verifying.delete(key));
  }

  /** Delivers the messages that are next in seq order; starts fetching missing ones the event log will not bring. */
  private drain(track: Track): void {
    this.deliverReady(track);
    if (this.tracks.get(track.id) !== track || track.paused || track.filling || track.messageCursor >= track.historyUntil) return;
    track.filling = this.fillMessages(track).finally(() => {
      track.filling = undefined;
    });
  }

  private deliverReady(track: Track): void {
    if (track.paused) return;
    const model = this.options.store.model(track.id);
    let moved = false;
    for (let next = model.messages.get(track.messageCursor + 1); next; next = model.messages.get(track.messageCursor + 1)) {
      track.messageCursor = next.seq;
      moved = true;
      this.options.emit({ type: 'message', message: next });
      if (this.tracks.get(track.id) !== track) return; // a listener closed the session, or it was forgotten
    }
    if (moved) this.options.onCursorsChange();
  }

  /** Fetches messages (messageCursor, historyUntil] with messagesSince, delivering as it goes. */
  private async fillMessages(track: Track): Promise<void> {
    const { api, signal, pageSize } = this.options;
    let failures = 0;
    while (this.tracks.get(track.id) === track && !signal.aborted && !track.paused && track.messageCursor < track.historyUntil) {
      const asked = track.messageCursor;
      let messages: Message[];
      try {
        messages = (await api.messagesSince(track.id, asked, { first: Math.min(pageSize, track.historyUntil - asked) })).messages;
        failures = 0;
      } catch (raw) {
        const error = toChatError(raw);
        if (signal.aborted || this.tracks.get(track.id) !== track) return;
        if (isGone(error)) {
          this.gone(track);
          return;
        }
        // Our cursor is beyond the conversation's messages: nothing to fetch.
        if (isChatError(error, ErrorCode.BAD_USER_INPUT) && error.field === 'afterSeq') {
          track.historyUntil = track.messageCursor;
          return;
        }
        this.options.onError(error);
        if (!isTransient(error) && !isChatError(error, ErrorCode.UNAUTHENTICATED)) return;
        try {
          await sleep(error.retryAfterMs ?? backoffDelay(failures++, this.options.retry), { signal });
        } catch {
          return;
        }
        continue;
      }
      if (this.tracks.get(track.id) !== track) return;
      const model = this.options.store.model(track.id);
      for (const message of messages) model.put(message, true);
      this.deliverReady(track);
      // No progress: the server has nothing where we expected. Stop rather than spin.
      if (track.messageCursor === asked) {
        track.historyUntil = asked;
        return;
      }
    }
  }
}
