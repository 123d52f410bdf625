import { useLayoutEffect, useRef, useState, type FormEvent, type KeyboardEvent } from 'react';
import type { Conversation, Message, ReadReceipt } from '@chat-api/client';
import { usePresence, useReadReceipts, useTyping } from './hooks';
import { Members } from './Members';
import { titleOf, type ChatStore, type Outgoing, type Snapshot } from './store';

const time = (iso: string) => new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

export function Thread({ store, state, conversation }: { store: ChatStore; state: Snapshot; conversation: Conversation }) {
  const { chat, me } = store;
  const id = conversation.id;
  const thread = state.threads[id] ?? { messages: [], hasMore: false, loading: true };
  const outgoing = state.outgoing.filter((o) => o.conversationId === id);
  const typing = useTyping(chat, id);
  const online = usePresence(chat, id);
  const receipts = useReadReceipts(chat, id, conversation.lastSeq);
  const [showMembers, setShowMembers] = useState(false);
  const peer = state.peers[id];
  const subtitle = peer
    ? online.get(peer.id)
      ? 'online'
      : 'offline'
    : // The viewer is online too (the subscription reports the others).
      `${conversation.memberCount} members, ${[...online].filter(([userId, on]) => on && userId !== me).length + 1} online`;

  return (
    <section className="thread" aria-label={titleOf(conversation, state.peers)}>
      <header className="bar">
        <button className="back" onClick={() => store.open(null)} aria-label="Back to conversations">
          ‹
        </button>
        <div className="heading">
          <h2>{titleOf(conversation, state.peers)}</h2>
          <small>{subtitle}</small>
        </div>
        <button className="link" onClick={() => setShowMembers(!showMembers)} aria-expanded={showMembers}>
          Members
        </button>
      </header>
      {showMembers && <Members store={store} conversation={conversation} online={online} />}
      <MessageList store={store} conversationId={id} messages={thread.messages} hasMore={thread.hasMore} loading={thread.loading} outgoing={outgoing} receipts={receipts} me={me} />
      <p className="typing" aria-live="polite">
        {typing.length > 0 && `${typing.map((u) => u.name).join(', ')} ${typing.length > 1 ? 'are' : 'is'} typing…`}
      </p>
      <Composer store={store} conversationId={id} />
    </section>
  );
}

interface ListProps {
  store: ChatStore;
  conversationId: string;
  messages: Message[];
  hasMore: boolean;
  loading: boolean;
  outgoing: Outgoing[];
  receipts: ReadReceipt[];
  me: string;
}

function MessageList({ store, conversationId, messages, hasMore, loading, outgoing, receipts, me }: ListProps) {
  const ref = useRef<HTMLOListElement>(null);
  // Where the view was before this render: to keep the reader's place when
  // older messages are added above, and to follow new ones only if at the bottom.
  const before = useRef({ firstSeq: undefined as number | undefined, height: 0, atBottom: true });

  useLayoutEffect(() => {
    const list = ref.current!;
    const firstSeq = messages[0]?.seq;
    const previous = before.current;
    if (previous.firstSeq !== undefined && firstSeq !== undefined && firstSeq < previous.firstSeq) {
      list.scrollTop += list.scrollHeight - previous.height; // a page of history above: stay put
    } else if (previous.atBottom) {
      list.scrollTop = list.scrollHeight;
    }
    before.current = { firstSeq, height: list.scrollHeight, atBottom: before.current.atBottom };
    // Too little history to scroll: load more right away, or the top is never reached.
    if (hasMore && !loading && list.scrollHeight <= list.clientHeight) store.loadOlder(conversationId);
  }, [messages, outgoing.length, hasMore, loading, store, conversationId]);

  const onScroll = () => {
    const list = ref.current!;
    before.current.atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 60;
    if (list.scrollTop < 200) store.loadOlder(conversationId);
  };

  // "Seen" goes under the newest of my messages that someone else has read.
  const readers = receipts.filter((r) => r.user.id !== me);
  const seenSeq = Math.max(0, ...messages.filter((m) => m.sender.id === me && readers.some((r) => r.lastReadSeq >= m.seq)).map((m) => m.seq));
  const seenBy = readers.filter((r) => r.lastReadSeq >= seenSeq).map((r) => r.user.name);

  return (
    <ol className="messages" ref={ref} onScroll={onScroll} aria-label="Messages">
      <li className="history">{loading ? 'Loading…' : hasMore ? '' : 'Beginning of the conversation'}</li>
      {messages.map((m) => (
        <li key={m.seq} className={`message ${m.sender.id === me ? 'mine' : ''}`} data-seq={m.seq}>
          {m.sender.id !== me && <span className="sender">{m.sender.name}</span>}
          <span className="body">{m.body}</span>
          <span className="meta">
            {time(m.createdAt)}
            {m.seq === seenSeq && ` · Seen${readers.length > 1 ? ` by ${seenBy.join(', ')}` : ''}`}
          </span>
        </li>
      ))}
      {outgoing.map((o) => (
        <li key={o.clientMessageId} className={`message mine ${o.status}`} data-status={o.status}>
          <span className="body">{o.body}</span>
          <span className="meta">
            {o.status === 'pending' ? (
              <>
                Sending…{' '}
                <button className="link" onClick={() => store.cancel(o.clientMessageId)}>
                  Cancel
                </button>
              </>
            ) : (
              <>
                {o.error}{' '}
                <button className="link" onClick={() => store.retry(o.clientMessageId)}>
                  Retry
                </button>{' '}
                <button className="link" onClick={() => store.discard(o.clientMessageId)}>
                  Delete
                </button>
              </>
            )}
          </span>
        </li>
      ))}
    </ol>
  );
}

function Composer({ store, conversationId }: { store: ChatStore; conversationId: string }) {
  const [draft, setDraft] = useState('');
  const submit = (event?: FormEvent) => {
    event?.preventDefault();
    if (!draft.trim()) return;
    store.send(conversationId, draft);
    setDraft('');
  };
  const onKeyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if (event.key === 'Enter' && !event.shiftKey) submit(event);
  };
  return (
    <form className="composer" onSubmit={submit}>
      <textarea
        aria-label="Message"
        placeholder="Message"
        rows={1}
        value={draft}
        onKeyDown={onKeyDown}
        onChange={(e) => {
          setDraft(e.target.value);
          if (e.target.value) store.chat.notifyTyping(conversationId);
          else store.chat.stopTyping(conversationId);
        }}
      />
      <button type="submit" disabled={!draft.trim()}>
        Send
      </button>
    </form>
  );
}
