-- chat_message_json becomes PL/pgSQL. As a LANGUAGE sql function it failed
-- on Citus 13.2.2 at every call: Citus cannot plan the statement of a SQL
-- function that reads a distributed table with the function's parameters
-- ("could not create distributed plan … Possibly this is caused by the use
-- of parameters in SQL functions, which is not supported in Citus"), on the
-- worker a delegated call runs on as on the coordinator. That broke every
-- edit, reaction and thread reply on Citus (chat_edit_message, chat_react,
-- chat_delete_message and chat_send_message call it). PL/pgSQL hands Citus
-- the parameters' values, which it routes to the conversation's shard. Same
-- signature, result and volatility; on Citus the new body is propagated to
-- the workers, since the function is distributed
-- (20261203000200_event_log_distribution).
CREATE OR REPLACE FUNCTION chat_message_json(p_conversation_id uuid, p_seq integer)
RETURNS json LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT json_build_object(
        'id', m.id, 'conversationId', m.conversation_id, 'seq', m.seq, 'senderId', m.sender_id,
        'body', m.body, 'clientMessageId', m.client_message_id, 'createdAt', m.created_at,
        'editedAt', m.edited_at, 'deletedAt', m.deleted_at, 'replyToSeq', m.reply_to_seq,
        'threadRootSeq', m.thread_root_seq, 'threadReplyCount', m.thread_reply_count,
        'threadLastReplySeq', m.thread_last_reply_seq, 'eventSeq', m.event_seq,
        'reactions', COALESCE((
            SELECT json_agg(json_build_object('reaction', r.reaction, 'count', r.n) ORDER BY r.first_at, r.reaction)
              FROM (SELECT mr.reaction, count(*)::integer AS n, min(mr.created_at) AS first_at
                      FROM message_reactions mr
                     WHERE mr.conversation_id = p_conversation_id AND mr.message_seq = p_seq
                     GROUP BY mr.reaction) r), '[]'::json))
      FROM messages m
     WHERE m.conversation_id = p_conversation_id AND m.seq = p_seq);
END
$$;
