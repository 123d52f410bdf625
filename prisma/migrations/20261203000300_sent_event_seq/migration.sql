-- The event that sent each message, so that a compacted read can tell a
-- message unchanged since it was sent (SENT) from one changed since
-- (UPDATED). Messages sent before the event log existed were sent by the
-- event of their own seq (20261203000000_event_log numbered them so); those
-- sent before this migration keep NULL (unknown: UPDATED).
DO $$
BEGIN
  -- One shard connection at a time: Citus refuses a function change after a
  -- parallel operation on a distributed table in the same transaction.
  IF EXISTS (SELECT 1 FROM pg_extension x WHERE x.extname = 'citus') THEN
    EXECUTE 'SET LOCAL citus.multi_shard_modify_mode TO ''sequential''';
  END IF;
  -- Through EXECUTE, as every change to a distributed table (20261203000000_event_log says why).
  EXECUTE 'ALTER TABLE "messages" ADD COLUMN "sent_event_seq" INTEGER';
  EXECUTE 'UPDATE "messages" SET "sent_event_seq" = "seq" WHERE "event_seq" = "seq" AND "edited_at" IS NULL AND "deleted_at" IS NULL';
END
$$;

CREATE OR REPLACE FUNCTION chat_send_message(
    p_conversation_id   uuid,
    p_sender_id         text,
    p_message_id        uuid,
    p_body              text,
    p_client_message_id text,
    p_sent_at           timestamptz,
    p_fanout_max        integer,
    p_reply_to_seq      integer,
    p_thread_root_seq   integer
) RETURNS TABLE (outcome text, sent_seq integer, sent_event_seq integer, sent_at timestamptz,
                 members integer, member_ids text[], thread_root json)
LANGUAGE plpgsql AS $$
-- sent_event_seq is now a column of messages too; an unqualified name means the variable.
#variable_conflict use_variable
DECLARE
    root record;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM conversation_members m
                    WHERE m.conversation_id = p_conversation_id AND m.user_id = p_sender_id) THEN
        outcome := 'not_member'; RETURN NEXT; RETURN;
    END IF;
    -- Targets never disappear (deletion leaves a tombstone) and a message
    -- never changes thread: checking before the lock is safe.
    IF p_reply_to_seq IS NOT NULL AND NOT EXISTS (SELECT 1 FROM messages m
            WHERE m.conversation_id = p_conversation_id AND m.seq = p_reply_to_seq) THEN
        outcome := 'reply_target_missing'; RETURN NEXT; RETURN;
    END IF;
    IF p_thread_root_seq IS NOT NULL THEN
        SELECT m.thread_root_seq, m.deleted_at INTO root FROM messages m
         WHERE m.conversation_id = p_conversation_id AND m.seq = p_thread_root_seq;
        IF NOT FOUND OR root.thread_root_seq IS NOT NULL OR root.deleted_at IS NOT NULL THEN
            outcome := 'thread_root_invalid'; RETURN NEXT; RETURN;
        END IF;
    END IF;

    UPDATE conversations c
       -- Within a conversation, created_at never goes backwards in seq order,
       -- whatever the instances' clocks say.
       SET last_seq        = c.last_seq + 1,
           last_event_seq  = c.last_event_seq + 1,
           last_message_at = GREATEST(p_sent_at, c.last_message_at),
           active_at       = GREATEST(p_sent_at, c.active_at, c.last_message_at)
     WHERE c.id = p_conversation_id
       AND EXISTS (SELECT 1 FROM conversation_members m
                    WHERE m.conversation_id = p_conversation_id AND m.user_id = p_sender_id)
    RETURNING c.last_seq, c.last_event_seq, c.last_message_at, c.member_count
         INTO sent_seq, sent_event_seq, sent_at, members;
    IF NOT FOUND THEN
        outcome := 'not_member'; RETURN NEXT; RETURN;
    END IF;

    INSERT INTO messages (conversation_id, seq, id, sender_id, body, client_message_id, created_at,
                          event_seq, sent_event_seq, reply_to_seq, thread_root_seq)
    VALUES (p_conversation_id, sent_seq, p_message_id, p_sender_id, p_body, p_client_message_id, sent_at,
            sent_event_seq, sent_event_seq, p_reply_to_seq, p_thread_root_seq);

    -- Sending reads everything before: the sender's receipt moves within this event.
    UPDATE conversation_members m
       SET last_read_seq = sent_seq, read_event_seq = sent_event_seq
     WHERE m.conversation_id = p_conversation_id AND m.user_id = p_sender_id;

    IF p_thread_root_seq IS NOT NULL THEN
        UPDATE messages m
           SET thread_reply_count = m.thread_reply_count + 1, thread_last_reply_seq = sent_seq, event_seq = sent_event_seq
         WHERE m.conversation_id = p_conversation_id AND m.seq = p_thread_root_seq;
        thread_root := chat_message_json(p_conversation_id, p_thread_root_seq);
    END IF;

    IF members <= p_fanout_max THEN
        SELECT array_agg(m.user_id) INTO member_ids
          FROM conversation_members m
         WHERE m.conversation_id = p_conversation_id;
    END IF;
    outcome := 'ok';
    RETURN NEXT;
END
$$;
