import type { ConnectionStatus } from '@chat-api/client';
import { useRef, useSyncExternalStore } from 'react';
import { ConversationList } from './ConversationList';
import { useConnectionStatus, useSnapshot } from './hooks';
import { NewConversation } from './NewConversation';
import type { Account } from './signin';
import type { ChatStore } from './store';
import { ConversationView } from './Conversation';

export function ChatApp({ store, account, onSignOut }: { store: ChatStore; account: Account; onSignOut: () => void }) {
  const state = useSnapshot(store);
  const status = useConnectionStatus(store.chat);
  const open = state.conversations.find((c) => c.id === state.openId);
  return (
    // On a phone-sized screen only one pane shows: the list, or the open conversation.
    <div className="app" data-pane={open ? 'conversation' : 'list'}>
      <Banner status={status} />
      <aside className="sidebar">
        <header className="bar">
          <strong className="me" title={account.userId}>
            {account.name}
          </strong>
          <button className="link" onClick={onSignOut}>
            Sign out
          </button>
        </header>
        <NewConversation store={store} />
        <ConversationList store={store} state={state} />
      </aside>
      <main className="main">
        {open ? (
          <ConversationView key={open.id} store={store} state={state} conversation={open} />
        ) : (
          <p className="empty">{state.loaded ? 'Pick a conversation, or start one.' : 'Loading…'}</p>
        )}
      </main>
      {state.notice && (
        <div role="alert" className="notice">
          {state.notice}
          <button className="link" onClick={() => store.dismissNotice()}>
            Dismiss
          </button>
        </div>
      )}
    </div>
  );
}

/** The browser's own idea of the network: it knows sooner than a socket waiting for a pong. */
function useBrowserOnline(): boolean {
  return useSyncExternalStore(
    (onChange) => {
      window.addEventListener('online', onChange);
      window.addEventListener('offline', onChange);
      return () => {
        window.removeEventListener('online', onChange);
        window.removeEventListener('offline', onChange);
      };
    },
    () => navigator.onLine,
  );
}

/** Shown whenever the session is not live: messages sent meanwhile wait and go out on reconnect. */
function Banner({ status }: { status: ConnectionStatus }) {
  const online = useBrowserOnline();
  const wasLive = useRef(false);
  if (status === 'live') wasLive.current = true;
  if (status === 'closed' || (status === 'live' && online)) return null;
  const text = !online
    ? 'Offline: messages will go out when the connection is back'
    : status === 'syncing'
      ? 'Catching up…'
      : wasLive.current
        ? 'Reconnecting…'
        : 'Connecting…';
  return (
    <div className="banner" role="status" data-status={online ? status : 'offline'}>
      {text}
    </div>
  );
}
