import { useLayoutEffect, useRef, useState, type FormEvent, type KeyboardEvent } from 'react';
import type { Conversation, Message, ReadReceipt } from '@chat-api/client';
import { usePresence, useReadReceipts, useTyping } from './hooks';
import { Members } from './Members';
import { MessageItem, OutgoingItem } from './MessageItem';
import { titleOf, type ChatStore, type Outgoing, type Snapshot } from './store';
import { ThreadPanel } from './ThreadPanel';

/** The open conversation: header, members, messages, who is typing, the composer; its open thread beside it. */
export function ConversationView({ store, state, conversation }: { store: ChatStore; state: Snapshot; conversation: Conversation }) {
  const { chat, me } = store;
  const id = conversation.id;
  const history = state.histories[id] ?? { messages: [], firstSeq: undefined, hasMore: false, loading: true };
  const outgoing = state.outgoing.filter((o) => o.conversationId === id && o.threadRootSeq === null);
  const typing = useTyping(chat, id);
  const online = usePresence(chat, id);
  const receipts = useReadReceipts(chat, id);
  const [showMembers, setShowMembers] = useState(false);
  const [quoting, setQuoting] = useState<Message | null>(null);
  const peer = state.peers[id];
  const subtitle = peer
    ? online.get(peer.id)
      ? 'online'
      : 'offline'
    : // The viewer is online too (the subscription reports the others).
      `${conversation.memberCount} members, ${[...online].filter(([userId, on]) => on && userId !== me).length + 1} online`;
  const thread = state.thread?.conversationId === id ? state.thread : null;

  return (
    <>
      <section className="pane" aria-label={titleOf(conversation, state.peers)}>
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
        <MessageList
          store={store}
          conversation={conversation}
          messages={history.messages}
          hasMore={history.hasMore}
          loading={history.loading}
          outgoing={outgoing}
          receipts={receipts}
          onReply={setQuoting}
        />
        <p className="typing" aria-live="polite">
          {typing.length > 0 && `${typing.map((u) => u.name).join(', ')} ${typing.length > 1 ? 'are' : 'is'} typing…`}
        </p>
        <Composer store={store} conversationId={id} quoting={quoting} onQuoted={() => setQuoting(null)} />
      </section>
      {thread && <ThreadPanel store={store} state={state} conversation={conversation} thread={thread} />}
    </>
  );
}

interface ListProps {
  store: ChatStore;
  conversation: Conversation;
  messages: Message[];
  hasMore: boolean;
  loading: boolean;
  outgoing: Outgoing[];
  receipts: ReadReceipt[];
  onReply(message: Message): void;
}

function MessageList({ store, conversation, messages, hasMore, loading, outgoing, receipts, onReply }: ListProps) {
  const ref = useRef<HTMLOListElement>(null);
  const id = conversation.id;
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
    if (hasMore && !loading && list.scrollHeight <= list.clientHeight) store.loadOlder(id);
  }, [messages, outgoing.length, hasMore, loading, store, id]);

  const onScroll = () => {
    const list = ref.current!;
    before.current.atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 60;
    if (list.scrollTop < 200) store.loadOlder(id);
  };

  // "Seen" goes under the newest of my messages that someone else has read
  // (receipts are live: they move as the others read).
  const readers = receipts.filter((r) => r.user.id !== store.me);
  const seenSeq = Math.max(0, ...messages.filter((m) => m.sender.id === store.me && readers.some((r) => r.lastReadSeq >= m.seq)).map((m) => m.seq));
  const seenBy = readers.filter((r) => r.lastReadSeq >= seenSeq).map((r) => r.user.name);

  return (
    <ol className="messages" ref={ref} onScroll={onScroll} aria-label="Messages">
      <li className="history">{loading ? 'Loading…' : hasMore ? '' : 'Beginning of the conversation'}</li>
      {messages.map((m) => (
        <MessageItem
          key={m.seq}
          store={store}
          conversation={conversation}
          message={m}
          note={m.seq === seenSeq ? ` · Seen${readers.length > 1 ? ` by ${seenBy.join(', ')}` : ''}` : undefined}
          onReply={() => onReply(m)}
          onThread={() => store.openThread(id, m.seq)}
        />
      ))}
      {outgoing.map((o) => (
        <OutgoingItem key={o.clientMessageId} store={store} outgoing={o} />
      ))}
    </ol>
  );
}

interface ComposerProps {
  store: ChatStore;
  conversationId: string;
  /** Replies in this thread. */
  threadRootSeq?: number;
  /** The message being quoted, shown above the input until sent or dropped. */
  quoting?: Message | null;
  onQuoted?: () => void;
  label?: string;
}

export function Composer({ store, conversationId, threadRootSeq, quoting, onQuoted, label = 'Message' }: ComposerProps) {
  const [draft, setDraft] = useState('');
  const submit = (event?: FormEvent) => {
    event?.preventDefault();
    if (!draft.trim()) return;
    store.send(conversationId, draft, { replyToSeq: quoting?.seq, threadRootSeq });
    setDraft('');
    onQuoted?.();
  };
  const onKeyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if (event.key === 'Enter' && !event.shiftKey) submit(event);
  };
  return (
    <form className="composer" onSubmit={submit}>
      {quoting && (
        <p className="quoting">
          Replying to <strong>{quoting.sender.name}</strong>: {quoting.deleted ? 'Message deleted' : quoting.body}
          <button type="button" className="link" aria-label="Cancel reply" onClick={onQuoted}>
            ✕
          </button>
        </p>
      )}
      <textarea
        aria-label={label}
        placeholder={label}
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
