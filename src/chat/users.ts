import type { Viewer } from '../auth.js';
import type { Database } from '../db/client.js';
import { notFound } from '../errors.js';
import type { UserRecord } from './records.js';

export type UserService = ReturnType<typeof createUserService>;

export function createUserService(db: Database) {
  // Users are created on first authenticated use. Remember whom we have
  // already written (with which name) so that each request does not upsert.
  const known = new Map<string, string>();
  const KNOWN_MAX = 100_000;

  return {
    /** Creates the viewer's user row on first use, and follows name changes in the token. */
    async ensure(viewer: Viewer): Promise<void> {
      if (known.get(viewer.id) === viewer.name) return;
      // On every new connection's path: straight to node-postgres (src/db/client.ts says why).
      await db.sql.query(
        'INSERT INTO users (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name',
        [viewer.id, viewer.name, new Date()],
        'chat_ensure_user',
      );
      if (known.size >= KNOWN_MAX) known.clear();
      known.set(viewer.id, viewer.name);
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

    /** When the user was last seen online (presence changes: every connect and last disconnect). */
    async setLastSeen(id: string, at: Date): Promise<void> {
      await db.sql.query('UPDATE users SET last_seen_at = $2 WHERE id = $1', [id, at], 'chat_set_last_seen');
    },
  };
}
