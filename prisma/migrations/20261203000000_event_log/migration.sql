-- The conversation event log (docs/architecture.md, "The event log").
--
-- Every change a member sees in a conversation is an event, numbered by the
-- conversation's own gapless sequence: conversations.last_event_seq, taken
-- under the conversation's row lock in the transaction that makes the change.
-- Nothing stores the events themselves: each change stamps the rows it touched
-- with its number (messages.event_seq, conversation_members.member_event_seq
-- and read_event_seq, conversation_departures.event_seq,
-- conversations.title_event_seq). "What changed after cursor N" is then the
-- rows stamped above N, each in its current state: catch-up is compacted by
-- construction (a message edited 50 times is one row), deleted content is
-- gone from storage, and no history of earlier versions is kept.
--
-- Messages keep their own gapless `seq` (their display order, and the cursor
-- of messageAdded / messagesSince / inbox); a send takes one of each.

-- Each DDL statement runs through EXECUTE: Citus sends some DDL on a
-- distributed table (CREATE INDEX) to the workers as the text of the statement
-- it received, and this file arrives as one multi-statement query, which a
-- worker refuses ("cannot insert multiple commands into a prepared
-- statement"). The new tables get their foreign keys in
-- 20261203000200_event_log_distribution, once they are distributed: Citus
-- accepts a key to a distributed table only from a table co-located with it.
DO $$
BEGIN
  EXECUTE 'ALTER TABLE "conversations" ADD COLUMN "last_event_seq" INTEGER NOT NULL DEFAULT 0';
  EXECUTE 'ALTER TABLE "conversations" ADD COLUMN "title_event_seq" INTEGER NOT NULL DEFAULT 0';
  -- Messages sent before the log existed become its first events, in order.
  EXECUTE 'UPDATE "conversations" SET "last_event_seq" = "last_seq" WHERE "last_seq" > 0';

  EXECUTE 'ALTER TABLE "messages" ADD COLUMN "event_seq" INTEGER NOT NULL DEFAULT 0';
  EXECUTE 'ALTER TABLE "messages" ADD COLUMN "edited_at" TIMESTAMPTZ(3)';
  EXECUTE 'ALTER TABLE "messages" ADD COLUMN "deleted_at" TIMESTAMPTZ(3)';
  EXECUTE 'ALTER TABLE "messages" ADD COLUMN "reply_to_seq" INTEGER';
  EXECUTE 'ALTER TABLE "messages" ADD COLUMN "thread_root_seq" INTEGER';
  EXECUTE 'ALTER TABLE "messages" ADD COLUMN "thread_reply_count" INTEGER NOT NULL DEFAULT 0';
  EXECUTE 'ALTER TABLE "messages" ADD COLUMN "thread_last_reply_seq" INTEGER';
  EXECUTE 'UPDATE "messages" SET "event_seq" = "seq"';
  EXECUTE 'CREATE INDEX "messages_conversation_id_event_seq_idx" ON "messages" ("conversation_id", "event_seq")';
  EXECUTE 'CREATE INDEX "messages_thread_idx" ON "messages" ("conversation_id", "thread_root_seq", "seq") WHERE "thread_root_seq" IS NOT NULL';

  EXECUTE 'ALTER TABLE "conversation_members" ADD COLUMN "member_event_seq" INTEGER NOT NULL DEFAULT 0';
  EXECUTE 'ALTER TABLE "conversation_members" ADD COLUMN "read_event_seq" INTEGER NOT NULL DEFAULT 0';
  EXECUTE 'CREATE INDEX "conversation_members_member_event_seq_idx" ON "conversation_members" ("conversation_id", "member_event_seq")';
  EXECUTE 'CREATE INDEX "conversation_members_read_event_seq_idx" ON "conversation_members" ("conversation_id", "read_event_seq")';
END
$$;

-- Who reacted with what. The summary a client sees (reaction, count) is
-- computed from these rows; the message is re-stamped by each change.
CREATE TABLE "message_reactions" (
    "conversation_id" UUID NOT NULL,
    "message_seq" INTEGER NOT NULL,
    "reaction" TEXT NOT NULL,
    "user_id" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL,
    CONSTRAINT "message_reactions_pkey" PRIMARY KEY ("conversation_id", "message_seq", "reaction", "user_id")
);

-- A member who left or was removed, until they join again: the tombstone of
-- a membership, so that catch-up can say who is gone.
CREATE TABLE "conversation_departures" (
    "conversation_id" UUID NOT NULL,
    "user_id" TEXT NOT NULL,
    "event_seq" INTEGER NOT NULL,
    "reason" TEXT NOT NULL,
    "departed_at" TIMESTAMPTZ(3) NOT NULL,
    "new_owner_id" TEXT,
    CONSTRAINT "conversation_departures_pkey" PRIMARY KEY ("conversation_id", "user_id")
);
DO $$
BEGIN
  EXECUTE 'CREATE INDEX "conversation_departures_event_seq_idx" ON "conversation_departures" ("conversation_id", "event_seq")';
END
$$;
