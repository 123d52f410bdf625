import type { Database } from '../db/client.js';

/**
 * Keeps each member's copy of a conversation's activity in the inbox index
 * (user_conversations.active_at, distributed by user), which orders their
 * `conversations` list on their own shard (docs/citus.md, "The conversation
 * list"). After a send commits:
 *
 * - the sender's row moves before the send is answered (awaited), so the
 *   sender's next list read shows it. Moves requested while one statement is
 *   in flight are written together by the next (group commit, RowMoves
 *   below): one single-shard statement per send when sends are rare, one
 *   statement per batch under load (measured: at 1,000 sends/s a statement
 *   per send here was 40% of the database's statements);
 * - the other members' rows move in the background, at most once per
 *   OTHERS_INTERVAL_MS per conversation per instance for a conversation whose
 *   member list came back with the send, and once per LARGE_INTERVAL_MS for a
 *   large one (every row of the conversation: a 10,000-member group rewrites
 *   10,000 rows each time). Sends in between are merged into the next move,
 *   with the latest time.
 *
 * Measured (docs/citus.md, "A hot conversation"): moving every member's row
 * on each send, awaited, cut direct-conversation sends on Citus to a third
 * (a statement across two user shards per send); this keeps one
 * single-shard statement on the send's path.
 *
 * Rows only move forward (`active_at < at`). A failure is reported, never
 * thrown: the message is stored and delivered whatever its place in a list,
 * and the conversation moves at its next send.
 */
export interface InboxOrder {
  /** A message was stored at `at`; `memberIds` is the member list when the conversation is small, else null. */
  moved(conversationId: string, at: Date, senderId: string, memberIds: readonly string[] | null): Promise<void>;
  /**
   * Writes every move still waiting for its interval now, and resolves when
   * those and the ones in flight are done (failures reported, not thrown): the
   * instance is stopping, and its database pool closes next.
   */
  flush(): Promise<void>;
}

/** How often a small conversation moves its other members' rows at most. */
export const OTHERS_INTERVAL_MS = 1000;
/** How often a large conversation rewrites every member's row at most. */
export const LARGE_INTERVAL_MS = 10_000;

interface Later {
  at: Date;
  /** Null: every member's row. */
  members: Set<string> | null;
  interval: number;
  lastRun: number;
  /** The write in flight. */
  running: Promise<void> | null;
  timer: NodeJS.Timeout | null;
  dirty: boolean;
}

export function createInboxOrder(db: Database, onError: (error: unknown, what: string) => void = () => {}): InboxOrder {
  const later = new Map<string, Later>();
  let stopping = false;

  const rows = new RowMoves(db);

  async function write(conversationId: string, at: Date, members: ReadonlySet<string> | null): Promise<void> {
    // Named members: their rows, written with whatever else is queued. Null: every row of the conversation.
    if (members) await Promise.all([...members].map((userId) => rows.move(userId, conversationId, at)));
    else await db.userConversation.updateMany({ where: { conversationId, activeAt: { lt: at } }, data: { activeAt: at } });
  }

  function schedule(conversationId: string, at: Date, members: Set<string> | null, interval: number): void {
    let entry = later.get(conversationId);
    if (!entry) {
      entry = { at, members, interval, lastRun: 0, running: null, timer: null, dirty: true };
      later.set(conversationId, entry);
    } else {
      if (at > entry.at) entry.at = at;
      if (entry.dirty && entry.members && members) for (const m of members) entry.members.add(m);
      else if (entry.dirty) entry.members = null;
      else entry.members = members;
      entry.interval = Math.max(entry.interval, interval);
      entry.dirty = true;
    }
    arm(conversationId, entry);
  }

  function arm(conversationId: string, entry: Later): void {
    if (entry.running || entry.timer) return;
    if (stopping && !entry.dirty) {
      later.delete(conversationId);
      return;
    }
    // Stopping: what is left goes now, without waiting for its interval.
    const wait = stopping ? 0 : Math.max(0, entry.lastRun + entry.interval - Date.now());
    entry.timer = setTimeout(() => void flush(conversationId, entry), wait);
    entry.timer.unref();
  }

  async function flush(conversationId: string, entry: Later): Promise<void> {
    entry.timer = null;
    if (!entry.dirty) {
      // Idle for a whole interval: forget the conversation.
      if (later.get(conversationId) === entry) later.delete(conversationId);
      return;
    }
    const { at, members } = entry;
    entry.dirty = false;
    entry.lastRun = Date.now();
    entry.running = write(conversationId, at, members).catch((error) => onError(error, 'inbox order'));
    await entry.running;
    entry.running = null;
    // Again after the interval: to move what arrived meanwhile, or to forget the conversation.
    arm(conversationId, entry);
  }

  return {
    async moved(conversationId, at, senderId, memberIds) {
      const others = memberIds ? new Set(memberIds.filter((id) => id !== senderId)) : null;
      if (!others || others.size > 0) schedule(conversationId, at, others, others ? OTHERS_INTERVAL_MS : LARGE_INTERVAL_MS);
      await rows.move(senderId, conversationId, at).catch((error) => onError(error, 'inbox order'));
    },
    async flush() {
      stopping = true;
      for (;;) {
        const pending: Promise<void>[] = [];
        for (const [conversationId, entry] of later) {
          if (entry.timer) {
            clearTimeout(entry.timer);
            pending.push(flush(conversationId, entry));
          } else if (entry.running) {
            pending.push(entry.running);
          }
        }
        if (pending.length === 0) return;
        await Promise.all(pending);
      }
    },
  };
}

/** Rows per statement at most (a bound on its size; more wait for the next). */
const MOVES_PER_STATEMENT = 500;
/**
 * How long a batch may take before its waiters are answered with an error
 * and the next batch starts on another connection: a statement stuck on one
 * connection (a half-open socket) must not hold every later send. The stuck
 * one may still land later; rows only move forward, so that is harmless.
 */
export const MOVE_TIMEOUT_MS = 5000;

interface RowMove {
  userId: string;
  conversationId: string;
  at: Date;
  done: { resolve(): void; reject(error: unknown): void }[];
}

/**
 * Group commit of moves of single rows (a sender's, and the other members'
 * of small conversations). A move is written at once when no statement is
 * in flight; otherwise it waits for that one to commit and goes with every
 * move queued meanwhile, so the number of statements follows the database's
 * pace, not the send rate. Each caller is answered when the statement
 * holding its move has committed.
 *
 * One row: an UPDATE by its primary key (single-shard on Citus). Several:
 * one call of chat_move_inbox_rows (migration 20261205000000_inbox_moves),
 * the rows sorted so that concurrent writers (other instances) lock them in
 * the same order. Rows only move forward; a row queued twice keeps its
 * latest time.
 */
class RowMoves {
  private readonly queue = new Map<string, RowMove>();
  private writing = false;

  constructor(private readonly db: Database) {}

  move(userId: string, conversationId: string, at: Date): Promise<void> {
    return new Promise((resolve, reject) => {
      const key = `${userId} ${conversationId}`;
      const queued = this.queue.get(key);
      if (queued) {
        if (at > queued.at) queued.at = at;
        queued.done.push({ resolve, reject });
      } else {
        this.queue.set(key, { userId, conversationId, at, done: [{ resolve, reject }] });
      }
      if (!this.writing) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.writing || this.queue.size === 0) return;
    const batch: RowMove[] = [];
    for (const [key, move] of this.queue) {
      batch.push(move);
      this.queue.delete(key);
      if (batch.length === MOVES_PER_STATEMENT) break;
    }
    this.writing = true;
    try {
      await withTimeout(this.write(batch), MOVE_TIMEOUT_MS, 'inbox order: a batch of row moves');
      for (const move of batch) for (const done of move.done) done.resolve();
    } catch (error) {
      for (const move of batch) for (const done of move.done) done.reject(error);
    } finally {
      this.writing = false;
      void this.flush();
    }
  }

  private async write(batch: RowMove[]): Promise<void> {
    if (batch.length === 1) {
      const [move] = batch as [RowMove];
      await this.db.asyncCommit.query(
        'UPDATE user_conversations SET active_at = $3 WHERE user_id = $1 AND conversation_id = $2 AND active_at < $3',
        [move.userId, move.conversationId, move.at],
        'chat_move_inbox_row',
      );
      return;
    }
    batch.sort((a, b) => (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : a.conversationId < b.conversationId ? -1 : a.conversationId > b.conversationId ? 1 : 0));
    await this.db.asyncCommit.query(
      'SELECT chat_move_inbox_rows($1::text[], $2::uuid[], $3::timestamptz[])',
      [batch.map((m) => m.userId), batch.map((m) => m.conversationId), batch.map((m) => m.at)],
      'chat_move_inbox_rows',
    );
  }
}

/** `work`, or an error after `ms` (the work itself goes on; its outcome is then ignored). */
export function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms);
    timer.unref();
  });
  work.catch(() => {}); // a late failure after the timeout is not unhandled
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
