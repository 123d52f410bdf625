import { useCallback, useEffect, useState, type FormEvent } from 'react';
import type { Conversation, Member } from '@chat-api/client';
import { parseIds } from './NewConversation';
import type { ChatStore } from './store';

/** Members of the open conversation: who is online, how far each has read; rename, add, remove (owner), leave. */
export function Members({ store, conversation, online }: { store: ChatStore; conversation: Conversation; online: ReadonlyMap<string, boolean> }) {
  const { chat, me } = store;
  const [members, setMembers] = useState<Member[]>([]);
  const [adding, setAdding] = useState('');
  const [title, setTitle] = useState('');
  const group = conversation.kind === 'GROUP';
  const owner = conversation.viewerRole === 'OWNER';

  const reload = useCallback(() => {
    chat.members(conversation.id, { first: 100 }).then((page) => setMembers(page.members), () => {});
  }, [chat, conversation.id]);
  // memberCount changes when anyone is added or removed (also by someone else).
  useEffect(reload, [reload, conversation.memberCount]);

  async function add(event: FormEvent) {
    event.preventDefault();
    if (await store.act(() => chat.addMembers(conversation.id, parseIds(adding)))) {
      setAdding('');
      reload();
    }
  }

  // Everyone else sees the new title through the SDK's `renamed` event.
  async function rename(event: FormEvent) {
    event.preventDefault();
    if (await store.act(() => chat.rename(conversation.id, title.trim()))) setTitle('');
  }

  return (
    <div className="members">
      <ul aria-label="Members">
        {members.map((m) => (
          <li key={m.user.id}>
            <span className={`dot ${online.get(m.user.id) || m.user.id === me ? 'online' : ''}`} />
            <span className="name">
              {m.user.name} {m.user.id === me && '(you)'} {m.role === 'OWNER' && <small>owner</small>}
            </span>
            <small className="read">read up to #{m.lastReadSeq}</small>
            {group && owner && m.user.id !== me && (
              <button className="link" onClick={async () => (await store.act(() => chat.removeMember(conversation.id, m.user.id))) && reload()}>
                Remove
              </button>
            )}
          </li>
        ))}
      </ul>
      {group && (
        <>
          <form onSubmit={rename} aria-label="Rename group">
            <input value={title} onChange={(e) => setTitle(e.target.value)} placeholder={conversation.title ?? ''} aria-label="New group name" required />
            <button type="submit">Rename</button>
          </form>
          <form onSubmit={add} aria-label="Add members">
            <input value={adding} onChange={(e) => setAdding(e.target.value)} placeholder="user ids to add" aria-label="User ids to add" required />
            <button type="submit">Add</button>
          </form>
          <button className="link danger" onClick={() => store.leave(conversation.id)}>
            Leave group
          </button>
        </>
      )}
    </div>
  );
}
