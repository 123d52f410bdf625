import { useEffect, useState } from 'react';
import { createChatClient } from '@chat-api/client';
import { ChatApp } from './ChatApp';
import { SignIn } from './SignIn';
import { devToken, loadAccount, saveAccount, type Account } from './signin';
import { ChatStore } from './store';

export function App() {
  const [account, setAccount] = useState<Account | null>(loadAccount);
  const [store, setStore] = useState<ChatStore | null>(null);

  useEffect(() => {
    if (!account) return;
    let token = account.token;
    const chat = createChatClient({
      url: new URL('/graphql', location.href).toString(),
      // Called on every (re)connect, and with `rejected` once the server has
      // refused the token (it expired): a development account gets a new one.
      getToken: async ({ rejected }) => {
        if (rejected && account.dev) {
          token = await devToken(account.userId, account.name);
          saveAccount({ ...account, token });
        }
        return token;
      },
    });
    const next = new ChatStore(chat, account.userId);
    void next.start();
    setStore(next);
    // The browser knows when the network is back before the backoff does.
    const online = () => chat.reconnect();
    window.addEventListener('online', online);
    return () => {
      window.removeEventListener('online', online);
      next.dispose();
      void chat.close();
      setStore(null);
    };
  }, [account]);

  const signIn = (next: Account | null) => {
    saveAccount(next);
    setAccount(next);
  };

  if (!account) return <SignIn onSignIn={signIn} />;
  if (!store) return null;
  return <ChatApp store={store} account={account} onSignOut={() => signIn(null)} />;
}
