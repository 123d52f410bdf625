import { useState, type FormEvent } from 'react';
import { devToken, DevSignInUnavailable, readToken, type Account } from './signin';

export function SignIn({ onSignIn }: { onSignIn: (account: Account) => void }) {
  const [userId, setUserId] = useState('');
  const [name, setName] = useState('');
  const [pasted, setPasted] = useState('');
  const [devAvailable, setDevAvailable] = useState(true);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function signInDev(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const displayName = name.trim() || userId.trim();
      onSignIn({ userId: userId.trim(), name: displayName, token: await devToken(userId.trim(), displayName), dev: true });
    } catch (e) {
      if (e instanceof DevSignInUnavailable) setDevAvailable(false);
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  }

  function signInWithToken(event: FormEvent) {
    event.preventDefault();
    try {
      onSignIn({ ...readToken(pasted.trim()), token: pasted.trim(), dev: false });
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    }
  }

  return (
    <main className="signin">
      <h1>Chat</h1>
      {devAvailable && (
        <form onSubmit={signInDev} aria-label="Development sign-in">
          <p className="hint">Development sign-in: any user id, no password. The server only allows this on its development secret.</p>
          <label>
            User id
            <input value={userId} onChange={(e) => setUserId(e.target.value)} required pattern="[A-Za-z0-9_.@:|+\-]{1,128}" autoComplete="username" autoFocus />
          </label>
          <label>
            Display name
            <input value={name} onChange={(e) => setName(e.target.value)} maxLength={100} placeholder="(the user id)" />
          </label>
          <button type="submit" disabled={busy}>
            Sign in
          </button>
        </form>
      )}
      <details open={!devAvailable}>
        <summary>Sign in with a token</summary>
        <form onSubmit={signInWithToken} aria-label="Token sign-in">
          <label>
            Token (from <code>npm run token -- alice Alice</code> or your identity provider)
            <textarea value={pasted} onChange={(e) => setPasted(e.target.value)} rows={3} required />
          </label>
          <button type="submit">Use token</button>
        </form>
      </details>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
    </main>
  );
}
