import { useState, type FormEvent, type KeyboardEvent } from 'react';
import type { Conversation, Message } from '@chat-api/client';
import type { ChatStore, Outgoing } from './store';

/** The quick reactions offered; any emoji works (others' show as they come). */
const QUICK_REACTIONS = ['👍', '❤️', '😂', '🎉'];

export const time = (iso: string) => new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

interface Props {
  store: ChatStore;
  conversation: Conversation;
  message: Message;
  /** Appended to the time, e.g. " · Seen by Bob". */
  note?: string;
  /** Quote this message in the composer (not offered in a thread). */
  onReply?: () => void;
  /** Open its thread (not offered for thread replies). */
  onThread?: () => void;
}

/**
 * One stored message: its quote, body (or tombstone), reactions (click one
 * to toggle your own), thread link and, behind "⋯", what you can do with it.
 * Changes go through the SDK and show when their event arrives, the same way
 * everyone else sees them.
 */
export function MessageItem({ store, conversation, message: m, note, onReply, onThread }: Props) {
  const mine = m.sender.id === store.me;
  const [menu, setMenu] = useState(false);
  const [draft, setDraft] = useState<string | null>(null);
  const c = conversation.id;
  const canDelete = mine || (conversation.kind === 'GROUP' && conversation.viewerRole === 'OWNER');
  const reacted = (reaction: string) => m.reactions.some((r) => r.reaction === reaction && r.reactedByViewer);
  const toggle = (reaction: string) =>
    store.change((chat) => (reacted(reaction) ? chat.unreact(c, m.seq, reaction) : chat.react(c, m.seq, reaction)));
  const act = (action: () => void) => () => {
    setMenu(false);
    action();
  };

  return (
    <li className={`message ${mine ? 'mine' : ''} ${m.deleted ? 'deleted' : ''}`} data-seq={m.seq}>
      {!mine && <span className="sender">{m.sender.name}</span>}
      {m.replyTo && (
        <blockquote className="quote">
          <strong>{m.replyTo.sender.name}</strong> {m.replyTo.deleted ? <em>Message deleted</em> : m.replyTo.body}
        </blockquote>
      )}
      {draft === null ? (
        <span className="body">{m.deleted ? 'Message deleted' : m.body}</span>
      ) : (
        <EditForm
          draft={draft}
          onChange={setDraft}
          onDone={(body) => {
            setDraft(null);
            if (body !== null && body.trim() && body !== m.body) store.change((chat) => chat.edit(c, m.seq, body));
          }}
        />
      )}
      {m.reactions.length > 0 && (
        <span className="reactions">
          {m.reactions.map((r) => (
            <button key={r.reaction} className="reaction" aria-pressed={r.reactedByViewer} aria-label={`${r.reaction} ${r.count}`} onClick={() => toggle(r.reaction)}>
              {r.reaction} {r.count}
            </button>
          ))}
        </span>
      )}
      {onThread && m.threadReplyCount > 0 && (
        <button className="link replies-link" onClick={onThread}>
          {m.threadReplyCount} {m.threadReplyCount === 1 ? 'reply' : 'replies'}
        </button>
      )}
      <span className="meta">
        {time(m.createdAt)}
        {m.editedAt && !m.deleted && <span className="edited"> · edited</span>}
        {note}
        {!m.deleted && (
          <button className="link more" aria-label="Message actions" aria-expanded={menu} onClick={() => setMenu(!menu)}>
            ⋯
          </button>
        )}
      </span>
      {menu && !m.deleted && (
        <span className="actions" role="group" aria-label="Actions">
          {QUICK_REACTIONS.map((reaction) => (
            <button key={reaction} className="link" aria-label={`React ${reaction}`} aria-pressed={reacted(reaction)} onClick={act(() => toggle(reaction))}>
              {reaction}
            </button>
          ))}
          {onReply && (
            <button className="link" onClick={act(onReply)}>
              Reply
            </button>
          )}
          {onThread && (
            <button className="link" onClick={act(onThread)}>
              Thread
            </button>
          )}
          {mine && (
            <button className="link" onClick={act(() => setDraft(m.body))}>
              Edit
            </button>
          )}
          {canDelete && (
            <button className="link danger" onClick={act(() => store.change((chat) => chat.delete(c, m.seq)))}>
              Delete message
            </button>
          )}
        </span>
      )}
    </li>
  );
}

/** Editing in place: Enter (or Save) keeps it, Escape (or Cancel) drops it. */
function EditForm({ draft, onChange, onDone }: { draft: string; onChange: (draft: string) => void; onDone: (body: string | null) => void }) {
  const save = (event?: FormEvent) => {
    event?.preventDefault();
    onDone(draft);
  };
  const onKeyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if (event.key === 'Enter' && !event.shiftKey) save(event);
    if (event.key === 'Escape') onDone(null);
  };
  return (
    <form className="edit" onSubmit={save}>
      <textarea aria-label="Edit message" rows={2} value={draft} autoFocus onKeyDown={onKeyDown} onChange={(e) => onChange(e.target.value)} />
      <button type="submit">Save</button>
      <button type="button" className="link" onClick={() => onDone(null)}>
        Cancel
      </button>
    </form>
  );
}

/** A message of mine the server has not stored yet, or refused. */
export function OutgoingItem({ store, outgoing: o }: { store: ChatStore; outgoing: Outgoing }) {
  return (
    <li className={`message mine ${o.status}`} data-status={o.status}>
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
  );
}
