import DataLoader from 'dataloader';
import type { Viewer } from '../auth.js';
import type { Database } from '../db/client.js';
import { GroupCommit } from '../db/group-commit.js';
import { notFound } from '../errors.js';
import { MOVE_TIMEOUT_MS, withTimeout } from './inbox-order.js';
import type { UserRecord } from './records.js';

export type UserService = ReturnType<typeof createUserService>;

export function createUserService(db: Database) {
  // Users are created on first authenticated use. Remember whom we have
  // already written (with which name) so that each request does not upsert.
  const known = new Map<string, string>();
  // The inbox version each write returned, until a subscription start takes it.
  const versionHints = new Map<string, number>();
  const KNOWN_MAX = 100_000;
  const rows = new UserRowWriter(db);
  const lastSeen = new LastSeenWriter(db);

  return {
    /** Creates the viewer's user row on first use, and follows name changes in the token. */
    async ensure(viewer: Viewer): Promise<void> {
      if (known.get(viewer.id) === viewer.name) return;
      const inboxVersion = await rows.write(viewer);
      if (known.size >= KNOWN_MAX) known.clear();
      known.set(viewer.id, viewer.name);
      if (versionHints.size >= KNOWN_MAX) versionHints.clear();
      versionHints.set(viewer.id, inboxVersion);
    },

    /**
     * The user's inbox version as `ensure` last wrote the user's row (at a
     * connection's authentication), once: the first caller takes it, later
     * ones get undefined. It may be older than the current version, never
     * newer; the hub starts a user from it instead of reading one on the
     * subscription start that usually follows (a stale one costs a single
     * resync at the next position check; docs/architecture.md, "Delivery").
     */
    takeInboxVersion(userId: string): number | undefined {
      const version = versionHints.get(userId);
      versionHints.delete(userId);
      return version;
    },

    async get(id: string): Promise<UserRecord | null> {
      return db.user.findUnique({ where: { id }, select: { id: true, name: true } });
    },

    async getMany(ids: readonly string[]): Promise<Map<string, UserRecord>> {
      if (ids.length === 0) return new Map();
      const rows = await db.user.findMany({ where: { id: { in: [...new Set(ids)] } }, select: { id: true, name: true } });
      return new Map(rows.map((row) => [row.id, row]));
    },

    /** Throws NOT_FOUND naming every id that is not a known user. */
    async requireAll(ids: readonly string[]): Promise<void> {
      const found = await this.getMany(ids);
      const missing = ids.filter((id) => !found.has(id));
      if (missing.length > 0) {
        throw notFound(`Unknown user${missing.length > 1 ? 's' : ''}: ${missing.slice(0, 10).join(', ')}`);
      }
    },

    async lastSeen(ids: readonly string[]): Promise<Map<string, Date | null>> {
      const rows = await db.user.findMany({ where: { id: { in: [...ids] } }, select: { id: true, lastSeenAt: true } });
      return new Map(rows.map((row) => [row.id, row.lastSeenAt]));
    },

    /**
     * When the user was last seen online (presence changes: a first
     * connection and a last disconnection). Resolves once written, with the
     * writes of other users queued meanwhile (LastSeenWriter).
     */
    setLastSeen(id: string, at: Date): Promise<void> {
      return lastSeen.write(id, at);
    },
  };
}

/** Users per statement at most. */
const LAST_SEEN_PER_STATEMENT = 1000;
const USER_ROWS_PER_STATEMENT = 500;

/**
 * Group commit (GroupCommit) of user-row upserts: every sign-in writes its
 * user's row once per process (creating it, following the token's name), and
 * after a restart thousands of users sign in at once. Sign-ins that queue
 * while a write is in flight go together as one multi-row upsert (at most
 * USER_ROWS_PER_STATEMENT rows; Citus routes each row to its user's shard).
 * Rows are written in id order, so two instances' batches take their row
 * locks in the same order.
 */
class UserRowWriter {
  private readonly batches: DataLoader<Viewer, number>;
  private readonly commit = new GroupCommit();

  constructor(private readonly db: Database) {
    this.batches = new DataLoader((viewers) => this.upsert(viewers), {
      cache: false,
      maxBatchSize: USER_ROWS_PER_STATEMENT,
      batchScheduleFn: this.commit.schedule,
    });
  }

  /** Creates or renames the viewer's row; resolves with the user's inbox version. */
  write(viewer: Viewer): Promise<number> {
    return this.batches.load(viewer);
  }

  private async upsert(viewers: readonly Viewer[]): Promise<number[]> {
    const rows = await this.commit.run(() => this.statement(viewers));
    const versions = new Map(rows.map((row) => [row.id, row.inboxVersion]));
    return viewers.map((viewer) => versions.get(viewer.id)!);
  }

  private statement(viewers: readonly Viewer[]): Promise<{ id: string; inboxVersion: number }[]> {
    // One row per user (a row twice in one upsert is an error); the last name seen wins.
    const names = new Map(viewers.map((viewer) => [viewer.id, viewer.name]));
    const createdAt = new Date();
    const upsert = 'ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name RETURNING id, inbox_version AS "inboxVersion"';
    // Straight to node-postgres (src/db/client.ts says why).
    if (names.size === 1) {
      const [id, name] = [...names][0]!;
      return this.db.sql.query(`INSERT INTO users (id, name, created_at) VALUES ($1, $2, $3) ${upsert}`, [id, name, createdAt], 'chat_ensure_user');
    }
    const ids = [...names.keys()].sort();
    const values = ids.map((_, i) => `($${2 * i + 2}, $${2 * i + 3}, $1)`).join(', ');
    // Unnamed: its text depends on the batch size.
    return this.db.sql.query(`INSERT INTO users (id, name, created_at) VALUES ${values} ${upsert}`, [createdAt, ...ids.flatMap((id) => [id, names.get(id)])]);
  }
}

/**
 * Group commit of last-seen times. A reconnect storm changes thousands of
 * users' presence at once, twice each (offline, online): one write
 * transaction per change made PostgreSQL commit (and flush its log) as many
 * times. Here a write starts at once when none is in flight; otherwise it
 * waits and goes with everything queued meanwhile, the latest time per user,
 * in one UPDATE by primary key (`id = ANY(…)`: no join, so PostgreSQL reads
 * the rows by index and Citus routes it to the shards holding them). Times
 * only move forward, so a write that lands late (after a timeout) is harmless.
 */
class LastSeenWriter {
  private queue = new Map<string, { at: Date; done: { resolve(): void; reject(error: unknown): void }[] }>();
  private writing = false;

  constructor(private readonly db: Database) {}

  write(userId: string, at: Date): Promise<void> {
    return new Promise((resolve, reject) => {
      const queued = this.queue.get(userId);
      if (queued) {
        if (at > queued.at) queued.at = at;
        queued.done.push({ resolve, reject });
      } else {
        this.queue.set(userId, { at, done: [{ resolve, reject }] });
      }
      if (!this.writing) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.writing || this.queue.size === 0) return;
    const batch: [string, { at: Date; done: { resolve(): void; reject(error: unknown): void }[] }][] = [];
    for (const entry of this.queue) {
      batch.push(entry);
      this.queue.delete(entry[0]);
      if (batch.length === LAST_SEEN_PER_STATEMENT) break;
    }
    this.writing = true;
    try {
      // Bounded as the inbox index's batches are (a stuck statement must not hold every later write).
      if (batch.length === 1) {
        const [id, { at }] = batch[0]!;
        await withTimeout(this.db.asyncCommit.query('UPDATE users SET last_seen_at = $2 WHERE id = $1 AND (last_seen_at IS NULL OR last_seen_at < $2)', [id, at], 'chat_set_last_seen'), MOVE_TIMEOUT_MS, 'last seen');
      } else {
        const statement = this.db.asyncCommit.query(
          `UPDATE users SET last_seen_at = ($2::timestamptz[])[array_position($1::text[], id)]
            WHERE id = ANY($1::text[]) AND (last_seen_at IS NULL OR last_seen_at < ($2::timestamptz[])[array_position($1::text[], id)])`,
          [batch.map(([id]) => id), batch.map(([, { at }]) => at)],
          'chat_set_last_seen_many',
        );
        await withTimeout(statement, MOVE_TIMEOUT_MS, 'last seen');
      }
      for (const [, { done }] of batch) for (const d of done) d.resolve();
    } catch (error) {
      for (const [, { done }] of batch) for (const d of done) d.reject(error);
    } finally {
      this.writing = false;
      void this.flush();
    }
  }
}
