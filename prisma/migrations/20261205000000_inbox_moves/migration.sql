-- Moves rows of the inbox index (user_conversations.active_at) forward, many
-- in one round trip and one commit: src/chat/inbox-order.ts batches the
-- moves that arrive while one is being written (group commit). One
-- single-row UPDATE per pair, by the primary key, in the order given (the
-- caller sorts, so that two batches never lock the same rows in opposite
-- orders). Not UPDATE … FROM unnest(…): with the batch's size unknown at
-- planning, PostgreSQL chose a hash join over a scan of the whole table.
--
-- On Citus the function runs on the coordinator (it is not delegated: the
-- pairs belong to many users' shards) and each UPDATE is routed to its
-- user's shard. PL/pgSQL, not SQL: Citus cannot plan a SQL function's
-- statements with their parameters (20261204000000_message_json_plpgsql).
CREATE OR REPLACE FUNCTION chat_move_inbox_rows(p_user_ids text[], p_conversation_ids uuid[], p_at timestamptz[])
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    moved integer := 0;
    n integer;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_user_ids, 1), 0) LOOP
        UPDATE user_conversations uc
           SET active_at = p_at[i]
         WHERE uc.user_id = p_user_ids[i] AND uc.conversation_id = p_conversation_ids[i] AND uc.active_at < p_at[i];
        GET DIAGNOSTICS n = ROW_COUNT;
        moved := moved + n;
    END LOOP;
    RETURN moved;
END
$$;
