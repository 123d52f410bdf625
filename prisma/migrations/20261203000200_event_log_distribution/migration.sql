-- Citus distribution with the event log's tables (docs/architecture.md,
-- "Storage"; declared in src/db/distribution.ts, which
-- test/citus-catalog.test.ts checks against the newest distribution
-- migration). Like 20261201000000_citus_distribution, which it supersedes, it
-- lists the whole intended distribution: tables already distributed as
-- intended are skipped, so it is safe on a fresh database and on one the
-- earlier migration distributed. On plain PostgreSQL it does nothing.
--
-- Then the event-log write functions are delegated to the conversation's
-- shard, as chat_send_message is.

-- 0. Citus refuses to create distributed functions after a parallel operation
-- on a distributed table in the same transaction ("cannot run function
-- command because there was a parallel operation"): run this migration's
-- shard operations one connection at a time.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_extension x WHERE x.extname = 'citus') THEN
    EXECUTE 'SET LOCAL citus.multi_shard_modify_mode TO ''sequential''';
  END IF;
END
$$;

-- 1. Distribution, where Citus is installed.
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
      (4, 'message_reactions',    'conversation_id', 'conversations'),
      (5, 'conversation_departures', 'conversation_id', 'conversations'),
      (6, 'users',                'id',              'none'),
      (7, 'user_conversations',   'user_id',         'users')
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

-- 2. The new tables' foreign keys, now that they are co-located with what
-- they reference (Citus refuses a key from a table that is not). Added only
-- where missing, so that a second run changes nothing.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'message_reactions_message_fkey') THEN
    EXECUTE 'ALTER TABLE "message_reactions" ADD CONSTRAINT "message_reactions_message_fkey"
               FOREIGN KEY ("conversation_id", "message_seq") REFERENCES "messages"("conversation_id", "seq") ON DELETE CASCADE ON UPDATE NO ACTION';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'conversation_departures_conversation_id_fkey') THEN
    EXECUTE 'ALTER TABLE "conversation_departures" ADD CONSTRAINT "conversation_departures_conversation_id_fkey"
               FOREIGN KEY ("conversation_id") REFERENCES "conversations"("id") ON DELETE CASCADE ON UPDATE NO ACTION';
  END IF;
END
$$;

-- 3. Each write is one call, delegated to the node holding the conversation's shard.
DO $$
DECLARE
    fn text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension e WHERE e.extname = 'citus') THEN
        RETURN;
    END IF;
    FOREACH fn IN ARRAY ARRAY[
        'chat_message_json(uuid, integer)',
        'chat_next_event(uuid, integer)',
        'chat_send_message(uuid, text, uuid, text, text, timestamptz, integer, integer, integer)',
        'chat_edit_message(uuid, integer, text, text, timestamptz, integer)',
        'chat_delete_message(uuid, integer, text, timestamptz, integer)',
        'chat_react(uuid, integer, text, text, boolean, timestamptz, integer, integer)',
        'chat_mark_read(uuid, text, integer, integer)',
        'chat_rename(uuid, text, text, integer)'
    ] LOOP
        EXECUTE format('SELECT create_distributed_function(%L, %L, colocate_with => %L)', fn, '$1', 'conversations');
    END LOOP;
END
$$;
