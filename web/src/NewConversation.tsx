import { useState, type FormEvent } from 'react';
import type { ChatStore } from './store';

/** User ids typed as "bob, carol". */
export const parseIds = (text: string) => [...new Set(text.split(/[\s,]+/).filter(Boolean))];

export function NewConversation({ store }: { store: ChatStore }) {
  const [mode, setMode] = useState<'dm' | 'group' | null>(null);
  const [userId, setUserId] = useState('');
  const [title, setTitle] = useState('');
  const [members, setMembers] = useState('');

  async function submit(event: FormEvent) {
    event.preventDefault();
    const done =
      mode === 'dm'
        ? await store.act(() => store.chat.startDirectConversation(userId.trim()), { open: true })
        : await store.act(() => store.chat.createGroup(title.trim(), parseIds(members)), { open: true });
    if (done) {
      setMode(null);
      setUserId('');
      setTitle('');
      setMembers('');
    }
  }

  return (
    <div className="new">
      <div className="actions">
        <button onClick={() => setMode(mode === 'dm' ? null : 'dm')} aria-pressed={mode === 'dm'}>
          New message
        </button>
        <button onClick={() => setMode(mode === 'group' ? null : 'group')} aria-pressed={mode === 'group'}>
          New group
        </button>
      </div>
      {mode && (
        <form onSubmit={submit} aria-label={mode === 'dm' ? 'New direct message' : 'New group'}>
          {mode === 'dm' ? (
            <label>
              User id
              <input value={userId} onChange={(e) => setUserId(e.target.value)} required autoFocus />
            </label>
          ) : (
            <>
              <label>
                Group name
                <input value={title} onChange={(e) => setTitle(e.target.value)} required autoFocus />
              </label>
              <label>
                Members (user ids)
                <input value={members} onChange={(e) => setMembers(e.target.value)} placeholder="bob, carol" />
              </label>
            </>
          )}
          <button type="submit">{mode === 'dm' ? 'Start' : 'Create'}</button>
        </form>
      )}
    </div>
  );
}
