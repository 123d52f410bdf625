-- The inbox index orders itself (docs/citus.md, "The conversation list"):
-- user_conversations, distributed by user, keeps each member's copy of the
-- conversation's activity, so the first page of a user's `conversations` is
-- chosen on that user's shard by one indexed read, whatever the number of
-- conversations, and only that page is then read by id from the
-- conversation shards. Sends move it up after they commit (src/chat/inbox-order.ts).
--
-- Each DDL statement runs through EXECUTE: Citus sends some DDL on a
-- distributed table (SET DEFAULT, CREATE INDEX) to the workers as the text of
-- the statement it received, and this file arrives as one multi-statement
-- query, which a worker refuses ("cannot insert multiple commands into a
-- prepared statement"). Through EXECUTE, that text is one statement.
DO $$
BEGIN
  EXECUTE 'ALTER TABLE "user_conversations" ADD COLUMN "active_at" TIMESTAMPTZ(3)';

  -- Existing rows take their conversation's activity. The conversations are
  -- read in a subquery, not joined in UPDATE … FROM: the two tables are in
  -- different co-location groups, and Citus plans a subquery on its own
  -- (recursively) where it refuses the join.
  EXECUTE 'UPDATE "user_conversations" uc
              SET "active_at" = c."active_at"
             FROM (SELECT "id", "active_at" FROM "conversations") c
            WHERE c."id" = uc."conversation_id"';
  EXECUTE 'UPDATE "user_conversations" SET "active_at" = "joined_at" WHERE "active_at" IS NULL';

  EXECUTE 'ALTER TABLE "user_conversations" ALTER COLUMN "active_at" SET DEFAULT CURRENT_TIMESTAMP';
  EXECUTE 'ALTER TABLE "user_conversations" ALTER COLUMN "active_at" SET NOT NULL';

  -- A user's list, newest first, in its cursor order (active_at, conversation_id).
  EXECUTE 'CREATE INDEX "user_conversations_user_id_active_at_idx" ON "user_conversations" ("user_id", "active_at" DESC, "conversation_id" DESC)';
  -- Every member's row of one conversation: what a large conversation's send moves up.
  EXECUTE 'CREATE INDEX "user_conversations_conversation_id_idx" ON "user_conversations" ("conversation_id")';
END
$$;
