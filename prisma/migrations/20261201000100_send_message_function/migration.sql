-- The send path as one function: one round trip on PostgreSQL, and on Citus
-- one call delegated to the worker that holds the conversation's shard
-- (create_distributed_function with the conversation id as distribution
-- argument), where every statement below is local to that shard. A single
-- SQL statement with data-modifying CTEs would not be router-planned by
-- Citus (an INSERT inside WITH), and clock_timestamp() (VOLATILE) is refused
-- in writes to distributed tables: the caller passes the time instead.
--
-- It increments the conversation's last_seq (taking its row lock, which
-- orders concurrent senders), inserts the message with that seq, moves the
-- sender's read position, and returns the member list when the conversation
-- is small enough to fan out on write. It returns no row when the
-- conversation does not exist or the sender is not a member. A unique
-- violation (a retried clientMessageId) aborts the whole call: no seq is
-- consumed.
CREATE OR REPLACE FUNCTION chat_send_message(
    p_conversation_id   uuid,
    p_sender_id         text,
    p_message_id        uuid,
    p_body              text,
    p_client_message_id text,
    p_sent_at           timestamptz,
    p_fanout_max        integer
) RETURNS TABLE (sent_seq integer, sent_at timestamptz, members integer, member_ids text[])
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE conversations c
       -- Within a conversation, created_at never goes backwards in seq order,
       -- whatever the instances' clocks say.
       SET last_seq        = c.last_seq + 1,
           last_message_at = GREATEST(p_sent_at, c.last_message_at),
           active_at       = GREATEST(p_sent_at, c.active_at, c.last_message_at)
     WHERE c.id = p_conversation_id
       AND EXISTS (SELECT 1 FROM conversation_members m
                    WHERE m.conversation_id = p_conversation_id AND m.user_id = p_sender_id)
    RETURNING c.last_seq, c.last_message_at, c.member_count INTO sent_seq, sent_at, members;
    IF NOT FOUND THEN
        RETURN;
    END IF;

    INSERT INTO messages (conversation_id, seq, id, sender_id, body, client_message_id, created_at)
    VALUES (p_conversation_id, sent_seq, p_message_id, p_sender_id, p_body, p_client_message_id, sent_at);

    UPDATE conversation_members m
       SET last_read_seq = sent_seq
     WHERE m.conversation_id = p_conversation_id AND m.user_id = p_sender_id;

    IF members <= p_fanout_max THEN
        SELECT array_agg(m.user_id) INTO member_ids
          FROM conversation_members m
         WHERE m.conversation_id = p_conversation_id;
    END IF;
    RETURN NEXT;
END
$$;

-- On Citus: delegate each call to the node holding that conversation's shard.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        EXECUTE $sql$SELECT create_distributed_function(
            'chat_send_message(uuid, text, uuid, text, text, timestamptz, integer)',
            'p_conversation_id',
            colocate_with => 'conversations')$sql$;
    END IF;
END
$$;
