import { isChatError, type ChatClient, type Conversation, type Message, type User } from '@chat-api/client';

/** One conversation's loaded history: ascending by seq, without gaps from the first loaded to the newest. */
export interface Thread {
  messages: Message[];
  /** Older messages exist on the server. */
  hasMore: boolean;
  loading: boolean;
}

/** A message the user sent that the server has not stored yet (or refused). */
export interface Outgoing {
  clientMessageId: string;
  conversationId: string;
  body: string;
  status: 'pending' | 'failed';
  error?: string;
}

export interface Snapshot {
  /** Most recently active first. */
  conversations: Conversation[];
  threads: Readonly<Record<string, Thread>>;
  outgoing: readonly Outgoing[];
  /** The other person of each direct conversation. */
  peers: Readonly<Record<string, User>>;
  openId: string | null;
  loaded: boolean;
  /** Something the user asked for failed; shown until dismissed. */
  notice: string | null;
}

const PAGE = 30;

const byActivity = (a: Conversation, b: Conversation) => (b.lastMessageAt ?? b.createdAt).localeCompare(a.lastMessageAt ?? a.createdAt);

/** Merges two ascending runs of messages, one copy per seq. */
function merge(a: Message[], b: Message[]): Message[] {
  const bySeq = new Map<number, Message>();
  for (const message of [...a, ...b]) bySeq.set(message.seq, message);
  return [...bySeq.values()].sort((x, y) => x.seq - y.seq);
}

/**
 * Everything the app shows, kept up to date from the SDK's events: React
 * reads it with useSyncExternalStore (see hooks.ts). Plain TypeScript, so
 * the same store fits any framework.
 *
 * The SDK delivers every message from the moment the session starts, once
 * and in order, across reconnects; history before that comes from
 * `messages()`. A thread is created before its history is fetched, so a
 * message arriving during the fetch is kept, and the two are merged by seq.
 */
export class ChatStore {
  private state: Snapshot = { conversations: [], threads: {}, outgoing: [], peers: {}, openId: null, loaded: false, notice: null };
  private readonly listeners = new Set<() => void>();
  private readonly offs: (() => void)[] = [];
  private readonly fetching = new Set<string>();
  private readonly aborts = new Map<string, AbortController>();

  constructor(
    readonly chat: ChatClient,
    readonly me: string,
  ) {}

  subscribe = (listener: () => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };
  getSnapshot = () => this.state;

  private set(patch: Partial<Snapshot>) {
    this.state = { ...this.state, ...patch };
    for (const listener of this.listeners) listener();
  }

  private patchConversation(id: string, update: (c: Conversation) => Conversation) {
    this.set({ conversations: this.state.conversations.map((c) => (c.id === id ? update(c) : c)).sort(byActivity) });
  }

  private fail(error: unknown) {
    this.set({ notice: error instanceof Error ? error.message : String(error) });
  }

  dismissNotice() {
    this.set({ notice: null });
  }

  async start() {
    this.offs.push(
      this.chat.onMessage((message) => this.received(message)),
      this.chat.onJoined(({ conversation }) => conversation && this.upsert(conversation)),
      this.chat.onLeft(({ conversationId }) => this.removed(conversationId)),
    );
    const visible = () => document.visibilityState === 'visible' && this.state.openId && this.markOpenRead();
    document.addEventListener('visibilitychange', visible);
    this.offs.push(() => document.removeEventListener('visibilitychange', visible));
    try {
      let after: string | null = null;
      const all: Conversation[] = [];
      // Enough for a reference app; a long list would page in as it scrolls.
      for (let page = 0; page < 5; page++) {
        const result = await this.chat.conversations({ first: 50, after });
        all.push(...result.conversations);
        if (!result.hasNextPage) break;
        after = result.endCursor;
      }
      // Events may have added some already; theirs are newer.
      const known = new Set(this.state.conversations.map((c) => c.id));
      this.set({ conversations: [...this.state.conversations, ...all.filter((c) => !known.has(c.id))].sort(byActivity), loaded: true });
      for (const conversation of all) this.lookUpPeer(conversation);
    } catch (error) {
      this.fail(error);
    }
  }

  dispose() {
    for (const off of this.offs.splice(0)) off();
    for (const controller of this.aborts.values()) controller.abort();
  }

  private upsert(conversation: Conversation) {
    const exists = this.state.conversations.some((c) => c.id === conversation.id);
    if (exists) this.patchConversation(conversation.id, (c) => ({ ...c, ...conversation }));
    else this.set({ conversations: [...this.state.conversations, conversation].sort(byActivity) });
    this.lookUpPeer(conversation);
  }

  /** Direct conversations have no title: show the other member's name. */
  private lookUpPeer(conversation: Conversation) {
    if (conversation.kind !== 'DIRECT' || this.state.peers[conversation.id]) return;
    this.chat.members(conversation.id, { first: 2 }).then(
      ({ members }) => {
        const peer = members.find((m) => m.user.id !== this.me)?.user;
        if (peer) this.set({ peers: { ...this.state.peers, [conversation.id]: peer } });
      },
      () => {}, // the id stays as the title
    );
  }

  private received(message: Message) {
    const { conversationId } = message;
    const thread = this.state.threads[conversationId];
    if (thread) this.set({ threads: { ...this.state.threads, [conversationId]: { ...thread, messages: merge(thread.messages, [message]) } } });
    const mine = message.sender.id === this.me;
    if (mine) this.set({ outgoing: this.state.outgoing.filter((o) => o.clientMessageId !== message.clientMessageId) });
    if (!this.state.conversations.some((c) => c.id === conversationId)) {
      // Not in the list yet (it was created while the list loaded): fetch it once.
      if (this.fetching.has(conversationId)) return;
      this.fetching.add(conversationId);
      void this.chat.conversation(conversationId).then(
        (conversation) => this.upsert(conversation),
        () => {},
      ).finally(() => this.fetching.delete(conversationId));
      return;
    }
    const seen = mine || this.isReading(conversationId);
    this.patchConversation(conversationId, (c) => ({
      ...c,
      lastMessage: message.seq >= c.lastSeq ? message : c.lastMessage,
      lastMessageAt: message.seq >= c.lastSeq ? message.createdAt : c.lastMessageAt,
      lastSeq: Math.max(c.lastSeq, message.seq),
      // Sending marks everything before it read, on the server too.
      unreadCount: seen ? 0 : c.unreadCount + 1,
    }));
    if (seen && !mine) this.chat.markSeen(conversationId, message.seq);
  }

  private removed(conversationId: string) {
    const { [conversationId]: _thread, ...threads } = this.state.threads;
    this.set({
      conversations: this.state.conversations.filter((c) => c.id !== conversationId),
      threads,
      openId: this.state.openId === conversationId ? null : this.state.openId,
    });
  }

  private isReading(conversationId: string) {
    return this.state.openId === conversationId && document.visibilityState === 'visible';
  }

  private markOpenRead() {
    const conversation = this.state.conversations.find((c) => c.id === this.state.openId);
    if (!conversation) return;
    if (conversation.lastSeq > 0) this.chat.markSeen(conversation.id, conversation.lastSeq);
    if (conversation.unreadCount > 0) this.patchConversation(conversation.id, (c) => ({ ...c, unreadCount: 0 }));
  }

  open(conversationId: string | null) {
    this.set({ openId: conversationId });
    if (!conversationId) return;
    this.markOpenRead();
    if (!this.state.threads[conversationId]) {
      this.set({ threads: { ...this.state.threads, [conversationId]: { messages: [], hasMore: false, loading: true } } });
      void this.loadPage(conversationId, undefined);
    }
  }

  /** The page before the oldest loaded message (infinite scroll upwards). */
  loadOlder(conversationId: string) {
    const thread = this.state.threads[conversationId];
    if (!thread || thread.loading || !thread.hasMore) return;
    this.set({ threads: { ...this.state.threads, [conversationId]: { ...thread, loading: true } } });
    void this.loadPage(conversationId, thread.messages[0]?.seq);
  }

  private async loadPage(conversationId: string, before: number | undefined) {
    try {
      const page = await this.chat.messages(conversationId, { before, last: PAGE });
      const thread = this.state.threads[conversationId];
      if (!thread) return; // left meanwhile
      this.set({
        threads: {
          ...this.state.threads,
          [conversationId]: { messages: merge(page.messages, thread.messages), hasMore: page.hasMore, loading: false },
        },
      });
    } catch (error) {
      const thread = this.state.threads[conversationId];
      if (thread) this.set({ threads: { ...this.state.threads, [conversationId]: { ...thread, loading: false } } });
      this.fail(error);
    }
  }

  send(conversationId: string, body: string, clientMessageId: string = crypto.randomUUID()) {
    const entry: Outgoing = { clientMessageId, conversationId, body, status: 'pending' };
    this.set({ outgoing: [...this.state.outgoing.filter((o) => o.clientMessageId !== clientMessageId), entry] });
    this.chat.stopTyping(conversationId);
    const controller = new AbortController();
    this.aborts.set(clientMessageId, controller);
    // The SDK retries by itself through network failures and reconnects, with
    // the same clientMessageId, so this rejects only for good reasons (or Cancel).
    this.chat.send(conversationId, body, { clientMessageId, signal: controller.signal }).then(
      () => {},
      (error: unknown) => {
        if (isChatError(error, 'CLOSED')) return;
        const reason = isChatError(error, 'ABORTED') ? 'Not sent' : error instanceof Error ? error.message : String(error);
        this.set({ outgoing: this.state.outgoing.map((o) => (o.clientMessageId === clientMessageId ? { ...o, status: 'failed', error: reason } : o)) });
      },
    ).finally(() => this.aborts.delete(clientMessageId));
  }

  /** Stops retrying a pending message (it then shows as failed, with Retry). */
  cancel(clientMessageId: string) {
    this.aborts.get(clientMessageId)?.abort();
  }

  /** Sends a failed message again. The same clientMessageId: if an earlier attempt was stored after all, this returns it instead of a copy. */
  retry(clientMessageId: string) {
    const entry = this.state.outgoing.find((o) => o.clientMessageId === clientMessageId);
    if (entry) this.send(entry.conversationId, entry.body, clientMessageId);
  }

  discard(clientMessageId: string) {
    this.set({ outgoing: this.state.outgoing.filter((o) => o.clientMessageId !== clientMessageId) });
  }

  /** Runs a membership change; on success the conversation is updated (and opened, for new ones). */
  async act(action: () => Promise<Conversation>, options: { open?: boolean } = {}): Promise<boolean> {
    try {
      const conversation = await action();
      this.upsert(conversation);
      if (options.open) this.open(conversation.id);
      return true;
    } catch (error) {
      this.fail(error);
      return false;
    }
  }

  async leave(conversationId: string) {
    try {
      await this.chat.leaveConversation(conversationId);
      this.removed(conversationId);
    } catch (error) {
      this.fail(error);
    }
  }
}

/** What to call a conversation in the list and the header. */
export function titleOf(conversation: Conversation, peers: Snapshot['peers']): string {
  return conversation.title ?? peers[conversation.id]?.name ?? 'Direct message';
}
