-- Every write of the event log as one function call: one round trip on
-- PostgreSQL, and on Citus one call delegated to the worker holding the
-- conversation's shard (see 20261203000200_event_log_distribution), where
-- every statement below is local to that shard. Each function locks the
-- conversation row, checks, takes the next event number, applies the change
-- and stamps what it touched (docs/architecture.md, "The event log"). A
-- refused change returns an outcome other than 'ok' and changes nothing; a
-- change that changes nothing ('unchanged') takes no event number. Callers
-- pass the time: clock functions are not IMMUTABLE and Citus refuses them in
-- writes.

-- A message in its current state, as JSON (the shape of MessageRecord, minus the sender's name).
CREATE OR REPLACE FUNCTION chat_message_json(p_conversation_id uuid, p_seq integer)
RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', m.id, 'conversationId', m.conversation_id, 'seq', m.seq, 'senderId', m.sender_id,
        'body', m.body, 'clientMessageId', m.client_message_id, 'createdAt', m.created_at,
        'editedAt', m.edited_at, 'deletedAt', m.deleted_at, 'replyToSeq', m.reply_to_seq,
        'threadRootSeq', m.thread_root_seq, 'threadReplyCount', m.thread_reply_count,
        'threadLastReplySeq', m.thread_last_reply_seq, 'eventSeq', m.event_seq,
        'reactions', COALESCE((
            SELECT json_agg(json_build_object('reaction', r.reaction, 'count', r.n) ORDER BY r.first_at, r.reaction)
              FROM (SELECT reaction, count(*)::integer AS n, min(created_at) AS first_at
                      FROM message_reactions
                     WHERE conversation_id = p_conversation_id AND message_seq = p_seq
                     GROUP BY reaction) r), '[]'::json))
      FROM messages m
     WHERE m.conversation_id = p_conversation_id AND m.seq = p_seq
$$;

-- The send: message seq and event number in one transaction.
DROP FUNCTION IF EXISTS chat_send_message(uuid, text, uuid, text, text, timestamptz, integer);
CREATE FUNCTION chat_send_message(
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
                          event_seq, reply_to_seq, thread_root_seq)
    VALUES (p_conversation_id, sent_seq, p_message_id, p_sender_id, p_body, p_client_message_id, sent_at,
            sent_event_seq, p_reply_to_seq, p_thread_root_seq);

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

-- Takes the next event number of a locked conversation; returns it with the audience.
CREATE OR REPLACE FUNCTION chat_next_event(p_conversation_id uuid, p_fanout_max integer,
                                           OUT event_seq integer, OUT members integer, OUT member_ids text[])
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE conversations c SET last_event_seq = c.last_event_seq + 1
     WHERE c.id = p_conversation_id
    RETURNING c.last_event_seq, c.member_count INTO event_seq, members;
    IF members <= p_fanout_max THEN
        SELECT array_agg(m.user_id) INTO member_ids FROM conversation_members m WHERE m.conversation_id = p_conversation_id;
    END IF;
END
$$;

-- The sender rewrites a message; no earlier version is kept.
CREATE FUNCTION chat_edit_message(p_conversation_id uuid, p_seq integer, p_editor_id text, p_body text,
                                  p_at timestamptz, p_fanout_max integer)
RETURNS TABLE (outcome text, event_seq integer, message json, members integer, member_ids text[])
LANGUAGE plpgsql AS $$
DECLARE
    target record;
    next record;
BEGIN
    PERFORM 1 FROM conversations c WHERE c.id = p_conversation_id FOR UPDATE;
    IF NOT FOUND THEN outcome := 'no_conversation'; RETURN NEXT; RETURN; END IF;
    IF NOT EXISTS (SELECT 1 FROM conversation_members m WHERE m.conversation_id = p_conversation_id AND m.user_id = p_editor_id) THEN
        outcome := 'not_member'; RETURN NEXT; RETURN;
    END IF;
    SELECT m.sender_id, m.body, m.deleted_at INTO target FROM messages m WHERE m.conversation_id = p_conversation_id AND m.seq = p_seq;
    IF NOT FOUND THEN outcome := 'no_message'; RETURN NEXT; RETURN; END IF;
    IF target.sender_id <> p_editor_id THEN outcome := 'not_sender'; RETURN NEXT; RETURN; END IF;
    IF target.deleted_at IS NOT NULL THEN outcome := 'deleted'; RETURN NEXT; RETURN; END IF;
    IF target.body = p_body THEN
        outcome := 'unchanged'; message := chat_message_json(p_conversation_id, p_seq); RETURN NEXT; RETURN;
    END IF;
    SELECT * INTO next FROM chat_next_event(p_conversation_id, p_fanout_max);
    UPDATE messages m SET body = p_body, edited_at = p_at, event_seq = next.event_seq
     WHERE m.conversation_id = p_conversation_id AND m.seq = p_seq;
    outcome := 'ok'; event_seq := next.event_seq; members := next.members; member_ids := next.member_ids;
    message := chat_message_json(p_conversation_id, p_seq);
    RETURN NEXT;
END
$$;

-- The sender, or a group's owner, deletes a message: its content and reactions
-- are removed from storage; the tombstone keeps its seq, sender and place.
CREATE FUNCTION chat_delete_message(p_conversation_id uuid, p_seq integer, p_actor_id text,
                                    p_at timestamptz, p_fanout_max integer)
RETURNS TABLE (outcome text, event_seq integer, message json, members integer, member_ids text[])
LANGUAGE plpgsql AS $$
DECLARE
    conversation record;
    actor_role text;
    target record;
    next record;
BEGIN
    SELECT c.kind::text AS kind INTO conversation FROM conversations c WHERE c.id = p_conversation_id FOR UPDATE;
    IF NOT FOUND THEN outcome := 'no_conversation'; RETURN NEXT; RETURN; END IF;
    SELECT m.role::text INTO actor_role FROM conversation_members m WHERE m.conversation_id = p_conversation_id AND m.user_id = p_actor_id;
    IF NOT FOUND THEN outcome := 'not_member'; RETURN NEXT; RETURN; END IF;
    SELECT m.sender_id, m.deleted_at INTO target FROM messages m WHERE m.conversation_id = p_conversation_id AND m.seq = p_seq;
    IF NOT FOUND THEN outcome := 'no_message'; RETURN NEXT; RETURN; END IF;
    IF target.sender_id <> p_actor_id AND NOT (conversation.kind = 'GROUP' AND actor_role = 'OWNER') THEN
        outcome := 'forbidden'; RETURN NEXT; RETURN;
    END IF;
    IF target.deleted_at IS NOT NULL THEN
        outcome := 'unchanged'; message := chat_message_json(p_conversation_id, p_seq); RETURN NEXT; RETURN;
    END IF;
    SELECT * INTO next FROM chat_next_event(p_conversation_id, p_fanout_max);
    UPDATE messages m SET body = '', deleted_at = p_at, event_seq = next.event_seq
     WHERE m.conversation_id = p_conversation_id AND m.seq = p_seq;
    DELETE FROM message_reactions r WHERE r.conversation_id = p_conversation_id AND r.message_seq = p_seq;
    outcome := 'ok'; event_seq := next.event_seq; members := next.members; member_ids := next.member_ids;
    message := chat_message_json(p_conversation_id, p_seq);
    RETURN NEXT;
END
$$;

-- A member adds or removes one reaction on a message.
CREATE FUNCTION chat_react(p_conversation_id uuid, p_seq integer, p_user_id text, p_reaction text, p_add boolean,
                           p_at timestamptz, p_max_distinct integer, p_fanout_max integer)
RETURNS TABLE (outcome text, event_seq integer, message json, members integer, member_ids text[])
LANGUAGE plpgsql AS $$
DECLARE
    target record;
    next record;
BEGIN
    PERFORM 1 FROM conversations c WHERE c.id = p_conversation_id FOR UPDATE;
    IF NOT FOUND THEN outcome := 'no_conversation'; RETURN NEXT; RETURN; END IF;
    IF NOT EXISTS (SELECT 1 FROM conversation_members m WHERE m.conversation_id = p_conversation_id AND m.user_id = p_user_id) THEN
        outcome := 'not_member'; RETURN NEXT; RETURN;
    END IF;
    SELECT m.deleted_at INTO target FROM messages m WHERE m.conversation_id = p_conversation_id AND m.seq = p_seq;
    IF NOT FOUND THEN outcome := 'no_message'; RETURN NEXT; RETURN; END IF;
    IF target.deleted_at IS NOT NULL THEN outcome := 'deleted'; RETURN NEXT; RETURN; END IF;
    IF p_add THEN
        IF EXISTS (SELECT 1 FROM message_reactions r WHERE r.conversation_id = p_conversation_id AND r.message_seq = p_seq
                      AND r.reaction = p_reaction AND r.user_id = p_user_id) THEN
            outcome := 'unchanged'; message := chat_message_json(p_conversation_id, p_seq); RETURN NEXT; RETURN;
        END IF;
        IF NOT EXISTS (SELECT 1 FROM message_reactions r WHERE r.conversation_id = p_conversation_id AND r.message_seq = p_seq AND r.reaction = p_reaction)
           AND (SELECT count(DISTINCT r.reaction) FROM message_reactions r
                 WHERE r.conversation_id = p_conversation_id AND r.message_seq = p_seq) >= p_max_distinct THEN
            outcome := 'too_many'; RETURN NEXT; RETURN;
        END IF;
        INSERT INTO message_reactions (conversation_id, message_seq, reaction, user_id, created_at)
        VALUES (p_conversation_id, p_seq, p_reaction, p_user_id, p_at);
    ELSE
        DELETE FROM message_reactions r WHERE r.conversation_id = p_conversation_id AND r.message_seq = p_seq
           AND r.reaction = p_reaction AND r.user_id = p_user_id;
        IF NOT FOUND THEN
            outcome := 'unchanged'; message := chat_message_json(p_conversation_id, p_seq); RETURN NEXT; RETURN;
        END IF;
    END IF;
    SELECT * INTO next FROM chat_next_event(p_conversation_id, p_fanout_max);
    UPDATE messages m SET event_seq = next.event_seq WHERE m.conversation_id = p_conversation_id AND m.seq = p_seq;
    outcome := 'ok'; event_seq := next.event_seq; members := next.members; member_ids := next.member_ids;
    message := chat_message_json(p_conversation_id, p_seq);
    RETURN NEXT;
END
$$;

-- A member's read position moves forward (a read receipt).
CREATE FUNCTION chat_mark_read(p_conversation_id uuid, p_user_id text, p_seq integer, p_fanout_max integer)
RETURNS TABLE (outcome text, event_seq integer, last_read_seq integer, last_seq integer, members integer, member_ids text[])
LANGUAGE plpgsql AS $$
DECLARE
    current_last integer;
    current_read integer;
    next record;
BEGIN
    SELECT c.last_seq INTO current_last FROM conversations c WHERE c.id = p_conversation_id FOR UPDATE;
    IF NOT FOUND THEN outcome := 'no_conversation'; RETURN NEXT; RETURN; END IF;
    SELECT m.last_read_seq INTO current_read FROM conversation_members m WHERE m.conversation_id = p_conversation_id AND m.user_id = p_user_id;
    IF NOT FOUND THEN outcome := 'not_member'; RETURN NEXT; RETURN; END IF;
    last_seq := current_last;
    IF p_seq > current_last THEN outcome := 'beyond'; last_read_seq := current_read; RETURN NEXT; RETURN; END IF;
    IF p_seq <= current_read THEN outcome := 'unchanged'; last_read_seq := current_read; RETURN NEXT; RETURN; END IF;
    SELECT * INTO next FROM chat_next_event(p_conversation_id, p_fanout_max);
    UPDATE conversation_members m SET last_read_seq = p_seq, read_event_seq = next.event_seq
     WHERE m.conversation_id = p_conversation_id AND m.user_id = p_user_id;
    outcome := 'ok'; event_seq := next.event_seq; last_read_seq := p_seq; members := next.members; member_ids := next.member_ids;
    RETURN NEXT;
END
$$;

-- A member renames a group.
CREATE FUNCTION chat_rename(p_conversation_id uuid, p_user_id text, p_title text, p_fanout_max integer)
RETURNS TABLE (outcome text, event_seq integer, members integer, member_ids text[])
LANGUAGE plpgsql AS $$
DECLARE
    conversation record;
    next record;
BEGIN
    SELECT c.kind::text AS kind, c.title INTO conversation FROM conversations c WHERE c.id = p_conversation_id FOR UPDATE;
    IF NOT FOUND THEN outcome := 'no_conversation'; RETURN NEXT; RETURN; END IF;
    IF NOT EXISTS (SELECT 1 FROM conversation_members m WHERE m.conversation_id = p_conversation_id AND m.user_id = p_user_id) THEN
        outcome := 'not_member'; RETURN NEXT; RETURN;
    END IF;
    IF conversation.kind <> 'GROUP' THEN outcome := 'not_group'; RETURN NEXT; RETURN; END IF;
    IF conversation.title = p_title THEN outcome := 'unchanged'; RETURN NEXT; RETURN; END IF;
    SELECT * INTO next FROM chat_next_event(p_conversation_id, p_fanout_max);
    UPDATE conversations c SET title = p_title, title_event_seq = next.event_seq WHERE c.id = p_conversation_id;
    outcome := 'ok'; event_seq := next.event_seq; members := next.members; member_ids := next.member_ids;
    RETURN NEXT;
END
$$;
