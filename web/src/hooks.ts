import { useEffect, useState, useSyncExternalStore } from 'react';
import type { ChatClient, ConnectionStatus, ReadReceipt, User } from '@chat-api/client';
import type { ChatStore, Snapshot } from './store';

// Thin React bindings over the SDK's listener API: each subscribes in an
// effect and unsubscribes on cleanup. Copy the ones you need.

export function useSnapshot(store: ChatStore): Snapshot {
  return useSyncExternalStore(store.subscribe, store.getSnapshot);
}

/** 'connecting' | 'syncing' | 'live' | 'closed', for the reconnecting banner. */
export function useConnectionStatus(chat: ChatClient): ConnectionStatus {
  return useSyncExternalStore(
    (onChange) => chat.onStatus(onChange),
    () => chat.status,
  );
}

/**
 * Who is online: contacts (no conversationId) or one conversation's members.
 * The server fixes who is watched when the subscription starts: pass a
 * `refreshKey` that changes with the people (e.g. the contacts' ids) to
 * start over when someone new should be watched.
 */
export function usePresence(chat: ChatClient, conversationId?: string, refreshKey?: string): ReadonlyMap<string, boolean> {
  const [online, setOnline] = useState<ReadonlyMap<string, boolean>>(new Map());
  useEffect(() => {
    return chat.onPresence(({ user, online: isOnline }) => setOnline((previous) => new Map(previous).set(user.id, isOnline)), { conversationId });
  }, [chat, conversationId, refreshKey]);
  return online;
}

/** The other members typing in a conversation right now. */
export function useTyping(chat: ChatClient, conversationId: string): User[] {
  const [typing, setTyping] = useState<User[]>([]);
  useEffect(() => {
    setTyping([]);
    return chat.onTyping(conversationId, setTyping);
  }, [chat, conversationId]);
  return typing;
}

/**
 * Every member's read position, live: the SDK reads the members once, then
 * moves them with each read receipt (and each member's own message, join or
 * departure) as it arrives.
 */
export function useReadReceipts(chat: ChatClient, conversationId: string): ReadReceipt[] {
  const [receipts, setReceipts] = useState<ReadReceipt[]>([]);
  useEffect(() => {
    setReceipts([]);
    return chat.onReadReceipts(conversationId, setReceipts);
  }, [chat, conversationId]);
  return receipts;
}
