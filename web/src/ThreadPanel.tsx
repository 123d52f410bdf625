import type { Conversation } from '@chat-api/client';
import { Composer } from './Conversation';
import { MessageItem, OutgoingItem } from './MessageItem';
import type { ChatStore, OpenThread, Snapshot } from './store';

/**
 * A message's thread, beside the conversation (over it, on a phone): the
 * root, its replies as the SDK's model holds them (live ones arrive there by
 * themselves), and a composer that replies in the thread.
 */
export function ThreadPanel({ store, state, conversation, thread }: { store: ChatStore; state: Snapshot; conversation: Conversation; thread: OpenThread }) {
  const outgoing = state.outgoing.filter((o) => o.conversationId === conversation.id && o.threadRootSeq === thread.rootSeq);
  return (
    <aside className="thread" aria-label="Thread">
      <header className="bar">
        <div className="heading">
          <h3>Thread</h3>
        </div>
        <button className="link" aria-label="Close thread" onClick={() => store.openThread(conversation.id, null)}>
          ✕
        </button>
      </header>
      <ol className="replies" aria-label="Replies">
        {thread.root && <MessageItem store={store} conversation={conversation} message={thread.root} />}
        <li className="history">
          {thread.loading ? (
            'Loading…'
          ) : thread.hasMore ? (
            <button className="link" onClick={() => store.loadEarlierReplies()}>
              Earlier replies
            </button>
          ) : (
            `${thread.replies.length} ${thread.replies.length === 1 ? 'reply' : 'replies'}`
          )}
        </li>
        {thread.replies.map((m) => (
          <MessageItem key={m.seq} store={store} conversation={conversation} message={m} />
        ))}
        {outgoing.map((o) => (
          <OutgoingItem key={o.clientMessageId} store={store} outgoing={o} />
        ))}
      </ol>
      <Composer store={store} conversationId={conversation.id} threadRootSeq={thread.rootSeq} label="Reply in thread" />
    </aside>
  );
}
