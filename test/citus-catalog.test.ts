import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DISTRIBUTION, LOCAL_TABLES, type TableDistribution } from '../src/db/distribution.js';
import { applyMigrations, MIGRATIONS_DIR } from '../src/db/migrate.js';
import { citusRuleViolations } from './support/citus-rules.js';
import { citusCluster, createTestDatabase, type TestDatabase } from './support/database.js';

// On plain PostgreSQL (CI: Citus is not installed there) these tests prove the
// schema is distributable another way: they read PostgreSQL's catalogs after
// migrating and apply Citus's rules (test/support/citus-rules.ts) to the
// distribution declared in src/db/distribution.ts, check that the migration
// says the same thing as that declaration, and run the migration's Citus
// branch against a stand-in. On a Citus run (TEST_CITUS=1, docs/citus.md) the
// stand-in gives way to the real thing: Citus's own catalog must show the
// declared distribution, and the migration's guards are run against Citus.

const citus = citusCluster();

/** The first migration that distributes tables: every later one must change them the way Citus accepts. */
const FIRST_DISTRIBUTION = '20261201000000_citus_distribution';
/** The newest distribution migration: each lists the whole intended distribution. */
const MIGRATION = '20261203000200_event_log_distribution';

let db: TestDatabase;
let migrationSql: string;

beforeAll(async () => {
  db = await createTestDatabase();
  await applyMigrations(db.url);
  migrationSql = await readFile(path.join(MIGRATIONS_DIR, MIGRATION, 'migration.sql'), 'utf8');
});
afterAll(async () => {
  await db?.drop();
});

/** The (table, column, colocate_with) rows the migration's Citus branch distributes, in its order. */
function distributedByMigration(sql: string): TableDistribution[] {
  const rows = [...sql.matchAll(/\(\s*\d+\s*,\s*'(\w+)'\s*,\s*'(\w+)'\s*,\s*'(\w+)'\s*\)/g)];
  return rows.map(([, table, column, colocate]) => ({ table: table!, column: column!, colocateWith: colocate === 'none' ? table! : colocate! }));
}

describe('the Citus migration', () => {
  it('is applied and recorded after the initial schema', async () => {
    const names = (await readdir(MIGRATIONS_DIR, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name).sort();
    expect(names.indexOf(MIGRATION)).toBeGreaterThan(names.indexOf('20261127000000_init'));
    const [row] = await db.query<{ finished_at: Date | null }>('SELECT finished_at FROM _prisma_migrations WHERE migration_name = $1', [MIGRATION]);
    expect(row?.finished_at).toBeInstanceOf(Date);
  });

  it.skipIf(citus)('distributes nothing on plain PostgreSQL: no citus extension, no Citus catalog, every table a plain table without Citus triggers', async () => {
    expect(await db.query("SELECT extname FROM pg_extension WHERE extname = 'citus'")).toEqual([]);
    expect(await db.query("SELECT to_regclass('pg_dist_partition') AS catalog")).toEqual([{ catalog: null }]);
    // create_distributed_table gives each table a TRUNCATE trigger; the only
    // triggers a plain table here has are the foreign keys' (tgconstraint set).
    const tables = await db.query<{ relname: string; relkind: string; other_triggers: number }>(
      `SELECT c.relname::text AS relname, c.relkind::text AS relkind,
              (SELECT count(*)::int FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgconstraint = 0) AS other_triggers
         FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relname = ANY($1) ORDER BY 1`,
      [DISTRIBUTION.map((d) => d.table)],
    );
    expect(tables).toEqual(DISTRIBUTION.map((d) => ({ relname: d.table, relkind: 'r', other_triggers: 0 })).sort((a, b) => a.relname.localeCompare(b.relname)));
  });

  it.runIf(citus)('distributes on Citus exactly as declared: hash by the declared column, in the declared co-location groups, the migrations table local', async () => {
    const rows = await db.query<{ table_name: string; method: string; column: string; colocationid: number }>(
      `SELECT logicalrelid::regclass::text AS table_name, partmethod::text AS method,
              column_to_column_name(logicalrelid, partkey) AS column, colocationid
         FROM pg_dist_partition ORDER BY 1`,
    );
    expect(rows.map(({ table_name, method, column }) => ({ table_name, method, column }))).toEqual(
      DISTRIBUTION.map((d) => ({ table_name: d.table, method: 'h', column: d.column })).sort((a, b) => a.table_name.localeCompare(b.table_name)),
    );
    const group = (table: string) => rows.find((r) => r.table_name === table)!.colocationid;
    for (const d of DISTRIBUTION) expect(group(d.table), d.table).toBe(group(d.colocateWith));
    expect(group('conversations')).not.toBe(group('users'));
    const shards = await db.query<{ table_name: string; shards: number; nodes: number }>(
      `SELECT table_name::text, count(*)::int AS shards, count(DISTINCT nodeport)::int AS nodes FROM citus_shards GROUP BY 1 ORDER BY 1`,
    );
    for (const row of shards) expect(row.nodes, `${row.table_name} spreads over every worker`).toBe(citus!.workers.length);
  });

  it.runIf(citus)("delegates chat_send_message on Citus by its conversation id, co-located with conversations", async () => {
    const [fn] = await db.query<{ argument: number; colocationid: number }>(
      `SELECT distribution_argument_index AS argument, colocationid FROM pg_dist_object
        WHERE objid = 'chat_send_message(uuid, text, uuid, text, text, timestamptz, integer, integer, integer)'::regprocedure`,
    );
    const [table] = await db.query<{ colocationid: number }>("SELECT colocationid FROM pg_dist_partition WHERE logicalrelid = 'conversations'::regclass");
    expect(fn).toEqual({ argument: 0, colocationid: table!.colocationid });
  });

  it('leaves the foreign keys to conversations in the form Citus accepts (ON UPDATE NO ACTION, ON DELETE CASCADE)', async () => {
    const keys = await db.query(
      `SELECT conname::text AS name, confupdtype::text AS on_update, confdeltype::text AS on_delete
         FROM pg_constraint WHERE contype = 'f' AND confrelid = 'conversations'::regclass ORDER BY 1`,
    );
    expect(keys).toEqual([
      { name: 'conversation_departures_conversation_id_fkey', on_update: 'a', on_delete: 'c' },
      { name: 'conversation_members_conversation_id_fkey', on_update: 'a', on_delete: 'c' },
      { name: 'messages_conversation_id_fkey', on_update: 'a', on_delete: 'c' },
    ]);
  });
});

describe('migrations after the distribution', () => {
  it('change distributed tables only through EXECUTE, so that Citus sends each worker one statement', async () => {
    // Citus propagates most DDL on a distributed table (SET DEFAULT, CREATE
    // INDEX, …) as the text it received; a migration file arrives as one
    // multi-statement query, which the workers refuse ("cannot insert multiple
    // commands into a prepared statement"). Inside DO … EXECUTE the text is one
    // statement (docs/citus.md, "Writing migrations"). A lone ADD COLUMN is
    // rebuilt by Citus from its parse tree, and works either way (checked on a
    // real cluster: 20261202000000_inbox_version).
    const names = (await readdir(MIGRATIONS_DIR, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name).sort();
    const tables = DISTRIBUTION.map((d) => d.table).join('|');
    const offending: string[] = [];
    for (const name of names.filter((n) => n > FIRST_DISTRIBUTION)) {
      const sql = (await readFile(path.join(MIGRATIONS_DIR, name, 'migration.sql'), 'utf8'))
        .replace(/--.*$/gm, '')
        .replace(/\$(\w*)\$[\s\S]*?\$\1\$/g, '');
      const found = sql.match(new RegExp(`\\b(?:ALTER\\s+TABLE|CREATE\\s+(?:UNIQUE\\s+)?INDEX[^;]*?\\bON)\\s+(?:ONLY\\s+)?(?:"?public"?\\.)?"?(?:${tables})"?\\s[^;]*`, 'gi')) ?? [];
      const deparsed = /^ALTER\s+TABLE\s+\S+\s+ADD\s+COLUMN\b[^,]*$/i;
      offending.push(...found.filter((statement) => !deparsed.test(statement.trim())).map((statement) => `${name}: ${statement.replace(/\s+/g, ' ')}`));
    }
    expect(offending).toEqual([]);
  });

  it('read distributed tables in PL/pgSQL functions, never in LANGUAGE sql ones, which Citus cannot plan with their parameters', async () => {
    // A SQL function's statement reaches Citus's planner with the function's
    // parameters unresolved; Citus 13.2 refuses it ("could not create
    // distributed plan … parameters in SQL functions"), on a worker running a
    // delegated call as on the coordinator (docs/citus.md, "Statements Citus refuses").
    const functions = await db.query<{ name: string; body: string }>(
      `SELECT p.oid::regprocedure::text AS name, p.prosrc AS body
         FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
        WHERE p.pronamespace = 'public'::regnamespace AND l.lanname = 'sql'`,
    );
    const tables = new RegExp(`\\b(?:${DISTRIBUTION.map((d) => d.table).join('|')})\\b`, 'i');
    expect(functions.filter((f) => tables.test(f.body)).map((f) => f.name)).toEqual([]);
  });
});

describe('the distribution', () => {
  it('is what the migration distributes: same tables, columns and co-location, in the same order', () => {
    expect(distributedByMigration(migrationSql)).toEqual(DISTRIBUTION);
  });

  it('distributes every referenced table before the tables whose foreign keys point at it', async () => {
    const keys = await db.query<{ name: string; from: string; to: string }>(
      `SELECT con.conname::text AS name, src.relname::text AS "from", dst.relname::text AS "to"
         FROM pg_constraint con JOIN pg_class src ON src.oid = con.conrelid JOIN pg_class dst ON dst.oid = con.confrelid
        WHERE con.contype = 'f' AND src.relnamespace = 'public'::regnamespace`,
    );
    const order = (table: string) => DISTRIBUTION.findIndex((d) => d.table === table);
    for (const key of keys) {
      expect(order(key.to), `${key.name}: ${key.to} must be distributed before ${key.from}`).toBeLessThan(order(key.from));
    }
  });

  it("breaks none of Citus's rules for keys, unique indexes and foreign keys", async () => {
    const violations = await citusRuleViolations(db, DISTRIBUTION, { localTables: LOCAL_TABLES });
    expect(violations, violations.join('\n')).toEqual([]);
  });

  it('is checked by rules that name each violating constraint', async () => {
    // A scratch schema that breaks each rule once, to show the checker catches (and names) it.
    await db.query(`
      CREATE SCHEMA broken;
      CREATE TABLE broken.rooms (id uuid PRIMARY KEY, slug text NOT NULL CONSTRAINT rooms_slug_key UNIQUE);
      CREATE TABLE broken.posts (
        room_id uuid NOT NULL REFERENCES broken.rooms (id) ON UPDATE CASCADE,
        seq int NOT NULL,
        author text NOT NULL,
        CONSTRAINT posts_pkey PRIMARY KEY (room_id, seq)
      );
      CREATE UNIQUE INDEX posts_author_lower ON broken.posts (lower(author));
      CREATE TABLE broken.people (id text PRIMARY KEY);
      ALTER TABLE broken.posts ADD CONSTRAINT posts_author_fkey FOREIGN KEY (author) REFERENCES broken.people (id);
      CREATE TABLE broken.notes (body text);
    `);
    try {
      const declared: TableDistribution[] = [
        { table: 'rooms', column: 'id', colocateWith: 'rooms' },
        { table: 'posts', column: 'room_id', colocateWith: 'rooms' },
        { table: 'people', column: 'id', colocateWith: 'people' },
      ];
      const violations = await citusRuleViolations(db, declared, { schema: 'broken' });
      expect(violations).toEqual([
        'table notes is neither distributed (src/db/distribution.ts) nor declared local',
        'unique index posts_author_lower on posts (lower(author)) does not include the distribution column room_id',
        'constraint rooms_slug_key on rooms (slug) does not include the distribution column id',
        'foreign key posts_author_fkey (posts -> people) joins tables of different co-location groups (rooms, people)',
        'foreign key posts_room_id_fkey (posts -> rooms) says ON UPDATE CASCADE, which Citus rejects on a distribution column',
      ]);
    } finally {
      await db.query('DROP SCHEMA broken CASCADE');
    }
  });
});

describe.skipIf(citus)("the migration's Citus branch, against a stand-in of Citus", () => {
  // Citus itself cannot run here, so its branch is run against a stand-in: the
  // three Citus objects it uses, in a schema of their own, on real PostgreSQL.
  // The stand-in create_distributed_table refuses what Citus refuses at that
  // step (a table already distributed; a co-location partner or a referenced
  // table not yet distributed or in another group; ON UPDATE CASCADE on the
  // distribution column), so this checks the branch's order, its guard against
  // distributing twice and its check of an existing distribution. It checks our
  // SQL, not Citus.
  const STANDIN = `
    CREATE SCHEMA citus_standin;
    CREATE TABLE citus_standin.pg_dist_partition (logicalrelid regclass PRIMARY KEY, partmethod "char", partkey text, colocationid int);
    CREATE TABLE citus_standin.calls (n serial, table_name text, distribution_column text, colocate_with text);
    CREATE FUNCTION citus_standin.column_to_column_name(regclass, text) RETURNS text LANGUAGE sql AS 'SELECT $2';
    CREATE FUNCTION citus_standin.create_distributed_table(table_name regclass, distribution_column text, colocate_with text DEFAULT 'default')
    RETURNS void LANGUAGE plpgsql AS $fn$
    DECLARE
      group_id int;
      fk record;
    BEGIN
      INSERT INTO citus_standin.calls (table_name, distribution_column, colocate_with) VALUES (table_name::text, distribution_column, colocate_with);
      IF EXISTS (SELECT 1 FROM citus_standin.pg_dist_partition p WHERE p.logicalrelid = table_name) THEN
        RAISE EXCEPTION 'table "%" is already distributed', table_name;
      END IF;
      IF colocate_with = 'none' THEN
        SELECT coalesce(max(colocationid), 0) + 1 INTO group_id FROM citus_standin.pg_dist_partition;
      ELSE
        SELECT p.colocationid INTO group_id FROM citus_standin.pg_dist_partition p WHERE p.logicalrelid = colocate_with::regclass;
        IF group_id IS NULL THEN RAISE EXCEPTION 'relation % is not distributed', colocate_with; END IF;
      END IF;
      FOR fk IN SELECT c.conname, c.confrelid, c.confupdtype FROM pg_constraint c WHERE c.conrelid = table_name AND c.contype = 'f' LOOP
        IF NOT EXISTS (SELECT 1 FROM citus_standin.pg_dist_partition p WHERE p.logicalrelid = fk.confrelid::regclass AND p.colocationid = group_id) THEN
          RAISE EXCEPTION 'foreign key %: referenced table % is not distributed in the same co-location group', fk.conname, fk.confrelid::regclass;
        END IF;
        IF fk.confupdtype IN ('c', 'n', 'd') THEN
          RAISE EXCEPTION 'foreign key %: ON UPDATE CASCADE / SET NULL / SET DEFAULT on the distribution column', fk.conname;
        END IF;
      END LOOP;
      INSERT INTO citus_standin.pg_dist_partition VALUES (table_name, 'h', distribution_column, group_id);
    END
    $fn$;
  `;
  let standin: TestDatabase;

  beforeAll(async () => {
    standin = await createTestDatabase();
    await applyMigrations(standin.url);
    await standin.query(STANDIN);
  });
  afterAll(async () => {
    await standin?.drop();
  });

  /** Runs the migration as the runner does (one transaction), with the stand-in first on the search path and its guard passing. */
  async function runAgainstStandin(): Promise<void> {
    const guard = "WHERE extname = 'citus'";
    expect(migrationSql.split(guard)).toHaveLength(2);
    const client = new pg.Client({ connectionString: standin.url });
    await client.connect();
    try {
      await client.query('BEGIN');
      await client.query('SET LOCAL search_path TO citus_standin, public');
      await client.query(migrationSql.replace(guard, "WHERE extname = 'plpgsql'"));
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK');
      throw error;
    } finally {
      await client.end();
    }
  }

  it('distributes each table once, heads of groups first, co-located as declared', async () => {
    await runAgainstStandin();
    const calls = await standin.query('SELECT table_name, distribution_column, colocate_with FROM citus_standin.calls ORDER BY n');
    expect(calls).toEqual(
      DISTRIBUTION.map((d) => ({ table_name: d.table, distribution_column: d.column, colocate_with: d.colocateWith === d.table ? 'none' : d.colocateWith })),
    );
    const groups = await standin.query<{ table_name: string; colocationid: number }>(
      'SELECT logicalrelid::text AS table_name, colocationid FROM citus_standin.pg_dist_partition',
    );
    const groupOf = (table: string) => groups.find((g) => g.table_name === table)!.colocationid;
    for (const d of DISTRIBUTION) expect(groupOf(d.table), d.table).toBe(groupOf(d.colocateWith));
    expect(groupOf('conversations')).not.toBe(groupOf('users'));
  });

  it('does nothing when run again on tables that are already distributed', async () => {
    const before = await standin.query('SELECT count(*)::int AS n FROM citus_standin.calls');
    await runAgainstStandin();
    expect(await standin.query('SELECT count(*)::int AS n FROM citus_standin.calls')).toEqual(before);
  });

  it('stops, naming the table, when a table is already distributed by another column', async () => {
    await standin.query("UPDATE citus_standin.pg_dist_partition SET partkey = 'id' WHERE logicalrelid = 'messages'::regclass");
    try {
      await expect(runAgainstStandin()).rejects.toThrow('table messages is already distributed by id, not by conversation_id');
    } finally {
      await standin.query("UPDATE citus_standin.pg_dist_partition SET partkey = 'conversation_id' WHERE logicalrelid = 'messages'::regclass");
    }
  });
});

describe.runIf(citus)("the migration's Citus branch, on Citus", () => {
  it('does nothing when run again on tables that are already distributed', async () => {
    // On the schema as it stood right after the migration: later ones replace
    // functions it delegates (20261206000000_change_fences gave the change
    // functions new signatures), so on today's schema its function step names
    // signatures that no longer exist. What it promises is about its own time.
    const other = await createTestDatabase();
    try {
      const names = (await readdir(MIGRATIONS_DIR, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name).sort();
      for (const name of names.slice(0, names.indexOf(MIGRATION) + 1)) {
        await runMigration(other.url, await readFile(path.join(MIGRATIONS_DIR, name, 'migration.sql'), 'utf8'));
      }
      const before = await other.query('SELECT logicalrelid::text, colocationid FROM pg_dist_partition ORDER BY 1');
      await runMigration(other.url, migrationSql);
      expect(await other.query('SELECT logicalrelid::text, colocationid FROM pg_dist_partition ORDER BY 1')).toEqual(before);
    } finally {
      await other.drop();
    }
  });

  it('stops, naming the table, when a table is already distributed by another column', async () => {
    const other = await createTestDatabase();
    try {
      // The schema before the newest distribution migration, then an operator's different choice for one table.
      // The earlier distribution migration (FIRST_DISTRIBUTION) has distributed it by user_id already: redistribute it.
      const names = (await readdir(MIGRATIONS_DIR, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name).sort();
      for (const name of names.slice(0, names.indexOf(MIGRATION))) {
        await runMigration(other.url, await readFile(path.join(MIGRATIONS_DIR, name, 'migration.sql'), 'utf8'));
      }
      await other.query("SELECT alter_distributed_table('user_conversations', distribution_column := 'conversation_id', colocate_with := 'none')");
      await expect(runMigration(other.url, migrationSql)).rejects.toThrow('table user_conversations is already distributed by conversation_id, not by user_id');
    } finally {
      await other.drop();
    }
  });
});

/** Runs one migration's SQL the way the migration runner does: in one transaction. */
async function runMigration(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('BEGIN');
    await client.query(sql);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK');
    throw error;
  } finally {
    await client.end();
  }
}
