-- Citus distribution (DESIGN section 3; the intent is written down once, in
-- src/db/distribution.ts, and test/citus-catalog.test.ts checks this file
-- against it). Runs inside the migration runner's transaction.
--
-- Part 1 runs everywhere. Part 2 runs only where the citus extension is
-- installed; on plain PostgreSQL it does nothing. Both are safe to run again
-- on a database that already has their effect. docs/citus.md says what to do
-- for a database that already holds data.

-- 1. Foreign keys Citus accepts.
--
-- Citus allows a foreign key between co-located distributed tables when it is
-- on the distribution column, but not with ON UPDATE CASCADE (nor SET NULL /
-- SET DEFAULT): an update could not cascade a new distribution value to
-- another shard. create_distributed_table fails on such a key with "SET NULL,
-- SET DEFAULT or CASCADE is not supported in ON UPDATE operation when
-- distribution key included in the foreign constraint" (citus
-- src/backend/distributed/commands/foreign_constraint.c). The init migration
-- used Prisma's default, ON UPDATE CASCADE; conversation ids never change, so
-- NO ACTION loses nothing. ON DELETE CASCADE stays: it is allowed.
--
-- Each key is replaced only if it is not already in this form, so a second run
-- (or a cluster where an operator already did this) costs nothing. The drop and
-- the add are separate statements: Citus refuses ADD CONSTRAINT combined with
-- other subcommands on a distributed table.
DO $$
DECLARE
  fk record;
BEGIN
  FOR fk IN
    SELECT * FROM (VALUES
      ('conversation_members', 'conversation_members_conversation_id_fkey'),
      ('messages',             'messages_conversation_id_fkey')
    ) AS wanted(table_name, constraint_name)
  LOOP
    IF NOT EXISTS (
      SELECT 1 FROM pg_constraint
       WHERE conrelid = fk.table_name::regclass
         AND conname = fk.constraint_name
         AND contype = 'f'
         AND confrelid = 'conversations'::regclass
         AND confupdtype = 'a'   -- NO ACTION
         AND confdeltype = 'c'   -- CASCADE
    ) THEN
      EXECUTE format('ALTER TABLE %I DROP CONSTRAINT IF EXISTS %I', fk.table_name, fk.constraint_name);
      EXECUTE format(
        'ALTER TABLE %I ADD CONSTRAINT %I FOREIGN KEY ("conversation_id") REFERENCES "conversations"("id") ON DELETE CASCADE ON UPDATE NO ACTION',
        fk.table_name, fk.constraint_name);
    END IF;
  END LOOP;
END
$$;

-- 2. Distribution, where Citus is installed.
--
-- Order matters: a table referenced by a foreign key is distributed before
-- the tables that reference it, and those are co-located with it, so that
-- Citus finds the referenced table already distributed in the same
-- co-location group when it checks each key (the foreign keys can stay in
-- place; they need not be dropped and re-created). conversations heads its
-- group; conversation_members and messages follow it. users heads the second
-- group, with the inbox index user_conversations. The heads use
-- colocate_with => 'none' so that each group is its own, whatever other
-- tables the database holds.
--
-- Every Citus object is reached through EXECUTE, so this block also compiles
-- where none of them exist. A table already distributed as intended is
-- skipped; one distributed differently stops the migration with a message
-- rather than being silently left as it is. Shard count comes from
-- citus.shard_count (set it before migrating: docs/citus.md).
DO $$
DECLARE
  spec record;
  method text;
  dist_column text;
  colocation int;
  head_colocation int;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
    RETURN;
  END IF;

  FOR spec IN
    SELECT * FROM (VALUES
      (1, 'conversations',        'id',              'none'),
      (2, 'conversation_members', 'conversation_id', 'conversations'),
      (3, 'messages',             'conversation_id', 'conversations'),
      (4, 'users',                'id',              'none'),
      (5, 'user_conversations',   'user_id',         'users')
    ) AS wanted(position, table_name, distribution_column, colocate_with)
    ORDER BY position
  LOOP
    method := NULL;
    dist_column := NULL;
    colocation := NULL;
    -- Reference and Citus local tables have no distribution column (partkey is NULL).
    EXECUTE 'SELECT partmethod::text,
                    CASE WHEN partkey IS NOT NULL THEN column_to_column_name(logicalrelid, partkey) END,
                    colocationid
               FROM pg_dist_partition WHERE logicalrelid = $1::regclass'
      INTO method, dist_column, colocation
      USING spec.table_name;

    IF method = 'h' THEN
      IF dist_column IS DISTINCT FROM spec.distribution_column THEN
        RAISE EXCEPTION 'table % is already distributed by %, not by %', spec.table_name, dist_column, spec.distribution_column
          USING HINT = 'See docs/citus.md; alter_distributed_table can change the distribution column.';
      END IF;
      IF spec.colocate_with <> 'none' THEN
        EXECUTE 'SELECT colocationid FROM pg_dist_partition WHERE logicalrelid = $1::regclass'
          INTO head_colocation
          USING spec.colocate_with;
        IF colocation IS DISTINCT FROM head_colocation THEN
          RAISE EXCEPTION 'table % is distributed but not co-located with %', spec.table_name, spec.colocate_with
            USING HINT = 'See docs/citus.md; alter_distributed_table(..., colocate_with => ...) can fix it.';
        END IF;
      END IF;
      CONTINUE;
    END IF;

    -- Not a Citus table, or a Citus local table (which create_distributed_table
    -- converts). A reference table would fail here, loudly, as it should.
    EXECUTE format('SELECT create_distributed_table(%L, %L, colocate_with => %L)',
                   spec.table_name, spec.distribution_column, spec.colocate_with);
  END LOOP;
END
$$;
