import { ErrorCode, isChatError, isGone, isTransient, toChatError, type ChatError } from './errors.js';
import { backoffDelay, sleep, type RetryOptions } from './timing.js';
import type { Cursors, Message, MessagesSincePage } from './types.js';

/** Where a message came from; it decides what the sequencer may infer from it. */
export type MessageSource =
  /** The inbox subscription: per conversation, the server sends seqs in order from where it started. */
  | 'live'
  /** A messagesSince page the sequencer asked for. */
  | 'fetched'
  /** The answer to our own send. */
  | 'sent';

export interface SequencerOptions {
  fetchSince(conversationId: string, afterSeq: number, first: number): Promise<MessagesSincePage>;
  /** Called with each message exactly once, in seq order per conversation. */
  deliver(message: Message): void;
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

interface Track {
  /** Highest seq delivered with nothing missing before it. */
  cursor: number;
  /** Messages ahead of a gap, by seq, waiting for the gap to be filled. */
  ahead: Map<number, Message>;
  /** Catch up at least to here (a seq seen ahead of a gap, or lastSeq seen in the conversation list). */
  target: number;
  catchingUp: Promise<void> | undefined;
}

/** Buffered messages ahead of a gap per conversation; beyond this they are fetched again instead. */
const MAX_AHEAD = 1000;

/**
 * Turns messages arriving from several sources (live stream, catch-up pages,
 * send answers), possibly duplicated or ahead of a gap, into one stream per
 * conversation that has every seq after the cursor exactly once, in order.
 *
 * Seqs are 1, 2, 3, … without gaps on the server, so "the next message" is
 * always cursor + 1: anything at or below the cursor is a duplicate, anything
 * beyond cursor + 1 waits until messagesSince has filled what lies between.
 */
export class Sequencer {
  private readonly tracks = new Map<string, Track>();
  private readonly options: SequencerOptions;

  constructor(options: SequencerOptions) {
    this.options = options;
  }

  /** Cursors of every followed conversation: where a resume starts. */
  cursors(): Cursors {
    const cursors: Cursors = {};
    for (const [conversationId, track] of this.tracks) cursors[conversationId] = track.cursor;
    return cursors;
  }

  has(conversationId: string): boolean {
    return this.tracks.has(conversationId);
  }

  /** Starts following a conversation from `cursor` (no-op if already followed). */
  follow(conversationId: string, cursor: number): void {
    if (this.tracks.has(conversationId)) return;
    this.tracks.set(conversationId, { cursor, ahead: new Map(), target: cursor, catchingUp: undefined });
    this.options.onCursorsChange();
  }

  /** Stops following (the viewer left); an ongoing catch-up notices and stops. */
  forget(conversationId: string): void {
    if (this.tracks.delete(conversationId)) this.options.onCursorsChange();
  }

  /**
   * The server holds fewer messages than our cursor claims (a cursor restored
   * against another database, say). Resuming from it would drop every new
   * message as a duplicate, so start again from what the server has.
   *
   * Only if the cursor is still the one the server refused: a cursor that
   * moved since was moved by real messages, and the lastSeq we hold is then
   * merely older than they are (rewinding would deliver them twice).
   */
  private rewind(track: Track, lastSeq: number, refused: number): void {
    if (track.cursor !== refused || track.cursor <= lastSeq) return;
    track.cursor = lastSeq;
    track.target = lastSeq;
    track.ahead.clear();
    this.options.onCursorsChange();
  }

  accept(message: Message, source: MessageSource): void {
    const conversationId = message.conversationId;
    let track = this.tracks.get(conversationId);
    if (!track) {
      // The live stream may start a conversation we do not follow (the server
      // began it there, joined before we had a cursor), and so may the answer
      // to our own send (we are a member; the conversation can be newer than
      // our last list, with its announcement lost to a disconnect). Either
      // way that message is where the conversation starts for us.
      if (source !== 'live' && source !== 'sent') return;
      this.follow(conversationId, message.seq - 1);
      track = this.tracks.get(conversationId)!;
    }
    if (message.seq <= track.cursor) return; // already delivered
    if (message.seq === track.cursor + 1) {
      this.advance(track, message);
      return;
    }
    // Ahead of a gap: hold it (bounded) and fetch what is missing.
    if (track.ahead.size < MAX_AHEAD) track.ahead.set(message.seq, message);
    void this.catchUp(conversationId, message.seq);
  }

  private advance(track: Track, message: Message): void {
    track.cursor = message.seq;
    this.options.deliver(message);
    // Drain whatever was waiting behind this one.
    for (let next = track.ahead.get(track.cursor + 1); next; next = track.ahead.get(track.cursor + 1)) {
      track.ahead.delete(next.seq);
      track.cursor = next.seq;
      this.options.deliver(next);
    }
    for (const seq of track.ahead.keys()) if (seq <= track.cursor) track.ahead.delete(seq);
    this.options.onCursorsChange();
  }

  /**
   * Fetches with messagesSince until the cursor reaches `until` (default: the
   * conversation's last seq when the first page is read). One catch-up per
   * conversation at a time: callers share it, and a higher target extends it.
   * Transient failures are retried with backoff; a conversation the viewer
   * lost is forgotten (onGone). Resolves when done or abandoned, never rejects.
   */
  catchUp(conversationId: string, until?: number): Promise<void> {
    const track = this.tracks.get(conversationId);
    if (!track) return Promise.resolve();
    if (until !== undefined) track.target = Math.max(track.target, until);
    else track.target = Number.POSITIVE_INFINITY;
    if (!track.catchingUp) {
      track.catchingUp = this.fill(conversationId, track).finally(() => {
        track.catchingUp = undefined;
      });
    }
    return track.catchingUp;
  }

  private async fill(conversationId: string, track: Track): Promise<void> {
    const { signal, pageSize } = this.options;
    let failures = 0;
    while (this.tracks.get(conversationId) === track && track.cursor < track.target && !signal.aborted) {
      const wanted = Number.isFinite(track.target) ? Math.min(pageSize, track.target - track.cursor) : pageSize;
      let page: MessagesSincePage;
      const asked = track.cursor;
      try {
        page = await this.options.fetchSince(conversationId, asked, Math.max(1, wanted));
        failures = 0;
      } catch (raw) {
        const error = toChatError(raw);
        if (signal.aborted || this.tracks.get(conversationId) !== track) return;
        if (isGone(error)) {
          this.forget(conversationId);
          this.options.onGone(conversationId);
          return;
        }
        if (isChatError(error, ErrorCode.BAD_USER_INPUT) && error.field === 'afterSeq') {
          // Our cursor is beyond the conversation's last seq: find out where it ends.
          const lastSeq = await this.lastSeqOf(conversationId);
          if (lastSeq === undefined || this.tracks.get(conversationId) !== track) return;
          this.rewind(track, lastSeq, asked);
          continue;
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
      if (this.tracks.get(conversationId) !== track) return;
      if (!Number.isFinite(track.target)) track.target = page.lastSeq;
      const before = track.cursor;
      for (const message of page.messages) this.accept(message, 'fetched');
      // No progress although we are behind the target: the target was beyond
      // what the server holds. Stop rather than spin.
      if (track.cursor === before) {
        track.target = track.cursor;
        track.ahead.clear();
      }
    }
  }

  private async lastSeqOf(conversationId: string): Promise<number | undefined> {
    try {
      return (await this.options.fetchSince(conversationId, 0, 1)).lastSeq;
    } catch (error) {
      this.options.onError(toChatError(error));
      return undefined;
    }
  }
}

