import { usePresence } from './hooks';
import { titleOf, type ChatStore, type Snapshot } from './store';

export function ConversationList({ store, state }: { store: ChatStore; state: Snapshot }) {
  // Contacts: the other people of the viewer's direct conversations (watched
  // anew when a direct conversation with someone new appears).
  const contacts = Object.values(state.peers).map((peer) => peer.id).sort().join(' ');
  const online = usePresence(store.chat, undefined, contacts);
  if (state.loaded && state.conversations.length === 0) return <p className="empty">No conversations yet.</p>;
  return (
    <ul className="conversations" aria-label="Conversations">
      {state.conversations.map((c) => {
        const peer = state.peers[c.id];
        const last = c.lastMessage;
        return (
          <li key={c.id}>
            <button className="conversation" aria-current={c.id === state.openId} onClick={() => store.open(c.id)}>
              <span className="title">
                {peer && <span className={`dot ${online.get(peer.id) ? 'online' : ''}`} aria-label={online.get(peer.id) ? 'online' : 'offline'} />}
                {titleOf(c, state.peers)}
              </span>
              {c.unreadCount > 0 && (
                <span className="unread" aria-label={`${c.unreadCount} unread`}>
                  {c.unreadCount}
                </span>
              )}
              <span className="preview">{last ? `${last.sender.id === store.me ? 'You' : last.sender.name}: ${last.body}` : 'No messages yet'}</span>
            </button>
          </li>
        );
      })}
    </ul>
  );
}
