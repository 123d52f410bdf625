import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../src/db/embedded.js';
import { applyMigrations } from '../src/db/migrate.js';

/**
 * A fresh, migrated database for one benchmark run, on DATABASE_URL's server
 * or, without it, on an embedded PostgreSQL under .data/bench. `drop()`
 * removes it (and stops the embedded server).
 */
export async function createBenchDatabase(prefix: string): Promise<{ url: string; drop(): Promise<void> }> {
  let base = process.env.DATABASE_URL;
  let embedded: EmbeddedDatabase | undefined;
  if (!base) {
    embedded = await startEmbeddedPostgres('.data/bench');
    base = embedded.url;
  }
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(base);
  url.pathname = `/${name}`;
  await applyMigrations(url.toString());
  return {
    url: url.toString(),
    async drop() {
      const client = new pg.Client({ connectionString: base });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await client.end();
      await embedded?.stop();
    },
  };
}

/** Users and group conversations written straight to the database: setup is not what we measure. */
export async function seedGroups(url: string, prefix: string, groups: number, size: number): Promise<{ ids: string[]; members: string[][] }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const ids: string[] = [];
    const members: string[][] = [];
    for (let g = 0; g < groups; g++) {
      const id = randomUUID();
      const users = Array.from({ length: size }, (_, m) => `${prefix}-${g}-${m}`);
      await client.query(`INSERT INTO users (id, name) SELECT u, u FROM unnest($1::text[]) u ON CONFLICT DO NOTHING`, [users]);
      await client.query(`INSERT INTO conversations (id, kind, title, member_count) VALUES ($1, 'GROUP', $2, $3)`, [id, `${prefix} ${g}`, size]);
      await client.query(
        `INSERT INTO conversation_members (conversation_id, user_id, role)
         SELECT $1, u, CASE WHEN ord = 1 THEN 'OWNER' ELSE 'MEMBER' END::member_role FROM unnest($2::text[]) WITH ORDINALITY AS t(u, ord)`,
        [id, users],
      );
      await client.query(`INSERT INTO user_conversations (user_id, conversation_id) SELECT u, $1 FROM unnest($2::text[]) u`, [id, users]);
      ids.push(id);
      members.push(users);
    }
    return { ids, members };
  } finally {
    await client.end();
  }
}
