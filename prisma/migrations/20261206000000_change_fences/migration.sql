-- Fencing of delayed attempts of a change (docs/architecture.md, "Retried
-- changes: fencing tokens").
--
-- The SDK retries an edit, deletion or reaction whose answer did not come in
-- time (src: client/src/outbox.ts). The first attempt may still be sitting in
-- an instance that stopped answering (frozen, partitioned) and run there
-- later, after the retry and after later changes were acknowledged: an old
-- body would overwrite a newer one, a removed reaction come back. Sends are
-- safe without this (a late attempt finds its clientMessageId stored); changes
-- are not, since they are not insert-once.
--
-- So each attempt may carry a fencing token: a writer id (one per SDK
-- session) and a number that grows with every attempt that writer makes. The
-- member's row keeps, per writer, the highest token that reached the
-- database; an attempt with a token at or below it changes nothing and is
-- answered SUPERSEDED. Kept on conversation_members (already distributed by
-- conversation_id, and locked by every change through the conversation's
-- row) as {writer: [token, epoch seconds of the attempt]}, the 16 most recent
-- writers per member and conversation.
-- On Citus: this migration's shard operations one connection at a time, since
-- Citus refuses to create distributed functions (below) after a parallel
-- operation on a distributed table in the same transaction (as in
-- 20261203000200_event_log_distribution).
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_extension x WHERE x.extname = 'citus') THEN
    EXECUTE 'SET LOCAL citus.multi_shard_modify_mode TO ''sequential''';
  END IF;
END
$$;

ALTER TABLE "conversation_members" ADD COLUMN "change_fences" JSONB NOT NULL DEFAULT '{}';

-- Takes the fence for one attempt: false when this writer already had an
-- attempt with a token at or above p_token here (the caller answers
-- 'superseded' and changes nothing), true otherwise (and the token is kept).
-- No writer: unfenced, always true. The caller holds the conversation's row
-- lock, so two attempts on one member's row never interleave.
CREATE FUNCTION chat_take_fence(p_conversation_id uuid, p_user_id text, p_writer text, p_token bigint, p_at timestamptz)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    fences jsonb;
    kept jsonb;
BEGIN
    IF p_writer IS NULL THEN
        RETURN true;
    END IF;
    SELECT m.change_fences INTO fences FROM conversation_members m
     WHERE m.conversation_id = p_conversation_id AND m.user_id = p_user_id;
    IF (fences -> p_writer ->> 0)::bigint >= p_token THEN
        RETURN false;
    END IF;
    -- The other writers, newest first, at most 15 of them: a writer evicted
    -- here has not written to this conversation since 15 others did.
    SELECT coalesce(jsonb_object_agg(f.key, f.value), '{}'::jsonb) INTO kept
      FROM (SELECT e.key, e.value FROM jsonb_each(fences) e
             WHERE e.key <> p_writer
             ORDER BY (e.value ->> 1)::double precision DESC
             LIMIT 15) f;
    UPDATE conversation_members m
       SET change_fences = kept || jsonb_build_object(p_writer, jsonb_build_array(p_token, extract(epoch FROM p_at)))
     WHERE m.conversation_id = p_conversation_id AND m.user_id = p_user_id;
    RETURN true;
END
$$;

-- The three change functions take the fence (p_writer, p_token) right after
-- the membership check, before anything else: a superseded attempt changes
-- nothing, whatever it asked for. Otherwise as in 20261203000100_event_functions.
DROP FUNCTION chat_edit_message(uuid, integer, text, text, timestamptz, integer);
DROP FUNCTION chat_delete_message(uuid, integer, text, timestamptz, integer);
DROP FUNCTION chat_react(uuid, integer, text, text, boolean, timestamptz, integer, integer);

CREATE FUNCTION chat_edit_message(p_conversation_id uuid, p_seq integer, p_editor_id text, p_body text,
                                  p_at timestamptz, p_fanout_max integer, p_writer text, p_token bigint)
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
    IF NOT chat_take_fence(p_conversation_id, p_editor_id, p_writer, p_token, p_at) THEN
        outcome := 'superseded'; RETURN NEXT; RETURN;
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

CREATE FUNCTION chat_delete_message(p_conversation_id uuid, p_seq integer, p_actor_id text,
                                    p_at timestamptz, p_fanout_max integer, p_writer text, p_token bigint)
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
    IF NOT chat_take_fence(p_conversation_id, p_actor_id, p_writer, p_token, p_at) THEN
        outcome := 'superseded'; RETURN NEXT; RETURN;
    END IF;
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

CREATE FUNCTION chat_react(p_conversation_id uuid, p_seq integer, p_user_id text, p_reaction text, p_add boolean,
                           p_at timestamptz, p_max_distinct integer, p_fanout_max integer, p_writer text, p_token bigint)
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
    IF NOT chat_take_fence(p_conversation_id, p_user_id, p_writer, p_token, p_at) THEN
        outcome := 'superseded'; RETURN NEXT; RETURN;
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

-- On Citus, delegated to the conversation's shard like the functions they
-- replace (20261203000200_event_log_distribution); chat_take_fence runs inside
-- them on the worker, so it is distributed too.
DO $$
DECLARE
    fn text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension e WHERE e.extname = 'citus') THEN
        RETURN;
    END IF;
    FOREACH fn IN ARRAY ARRAY[
        'chat_take_fence(uuid, text, text, bigint, timestamptz)',
        'chat_edit_message(uuid, integer, text, text, timestamptz, integer, text, bigint)',
        'chat_delete_message(uuid, integer, text, timestamptz, integer, text, bigint)',
        'chat_react(uuid, integer, text, text, boolean, timestamptz, integer, integer, text, bigint)'
    ] LOOP
        EXECUTE format('SELECT create_distributed_function(%L, %L, colocate_with => %L)', fn, '$1', 'conversations');
    END LOOP;
END
$$;
