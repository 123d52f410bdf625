import { isChatError, type ChatClient, type ChatEvent, type Conversation, type Message, type User } from '@chat-api/client';

/**
 * One conversation's messages on screen: the SDK's local model from
 * `firstSeq` on, without thread replies (they show under their root).
 */
export interface History {
  messages: Message[];
  /** The oldest seq loaded (older pages load as the user scrolls up); undefined until the first page is in. */
  firstSeq: number | undefined;
  /** Older messages exist on the server. */
  hasMore: boolean;
  loading: boolean;
}

/** The thread open next to the conversation: its root and replies, from the SDK's model. */
export interface OpenThread {
  conversationId: string;
  rootSeq: number;
  root: Message | undefined;
  replies: Message[];
  hasMore: boolean;
  loading: boolean;
}

/** A message the user sent that the server has not stored yet (or refused). */
export interface Outgoing {
  clientMessageId: string;
  conversationId: string;
  body: string;
  replyToSeq: number | null;
  threadRootSeq: number | null;
  status: 'pending' | 'failed';
  error?: string;
}

export interface Snapshot {
  /** Most recently active first. */
  conversations: Conversation[];
  histories: Readonly<Record<string, History>>;
  thread: OpenThread | null;
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

/**
 * Everything the app shows, kept up to date from the SDK's events: React
 * reads it with useSyncExternalStore (see hooks.ts). Plain TypeScript, so
 * the same store fits any framework.
 *
 * Messages come from the SDK's local model (`chat.local`), which applies
 * every edit, deletion, reaction and thread reply in order, across
 * reconnects, and holds the history pages `messages()` loaded. The store
 * only decides which part is on screen, and re-reads it when an event says
 * that conversation changed.
 */
export class ChatStore {
  private state: Snapshot = { conversations: [], histories: {}, thread: null, outgoing: [], peers: {}, openId: null, loaded: false, notice: null };
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
    this.offs.push(this.chat.onEvent((event) => this.applied(event)));
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

  /** Every event the SDK applied, in order. */
  private applied(event: ChatEvent) {
    switch (event.type) {
      case 'message':
        return this.received(event.message);
      case 'messageChanged':
        this.refresh(event.conversationId);
        // The list's preview shows the newest message: keep it current (edited, or deleted).
        return this.patchConversation(event.conversationId, (c) => (c.lastMessage?.seq === event.seq ? { ...c, lastMessage: event.message } : c));
      case 'renamed':
        return this.patchConversation(event.conversationId, (c) => ({ ...c, title: event.title }));
      case 'member':
        // The member count moved: read the conversation again rather than count (a catch-up is compacted).
        void this.chat.conversation(event.conversationId).then((c) => this.upsert(c), () => {});
        return;
      case 'receipt':
        // Read on another device of mine: nothing is unread up to there.
        if (event.user.id === this.me) this.patchConversation(event.conversationId, (c) => ({ ...c, unreadCount: Math.max(0, c.lastSeq - event.lastReadSeq) }));
        return;
      case 'joined':
        if (event.conversation) this.upsert(event.conversation);
        return;
      case 'left':
        return this.removed(event.conversationId);
    }
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

  /** Re-reads what is on screen of a conversation from the SDK's model. */
  private refresh(conversationId: string) {
    const history = this.state.histories[conversationId];
    if (history?.firstSeq !== undefined) {
      const messages = this.chat.local.timeline(conversationId, { fromSeq: history.firstSeq });
      this.set({ histories: { ...this.state.histories, [conversationId]: { ...history, messages } } });
    }
    const thread = this.state.thread;
    if (thread?.conversationId === conversationId) {
      this.set({ thread: { ...thread, root: this.chat.local.message(conversationId, thread.rootSeq), replies: this.chat.local.thread(conversationId, thread.rootSeq) } });
    }
  }

  private received(message: Message) {
    const { conversationId } = message;
    this.refresh(conversationId);
    const mine = message.sender.id === this.me;
    if (mine) this.set({ outgoing: this.state.outgoing.filter((o) => o.clientMessageId !== message.clientMessageId) });
    if (!this.state.conversations.some((c) => c.id === conversationId)) {
      // Not in the list yet (it was created while the list loaded): fetch it once.
      if (this.fetching.has(conversationId)) return;
      this.fetching.add(conversationId);
      void this.chat
        .conversation(conversationId)
        .then(
          (conversation) => this.upsert(conversation),
          () => {},
        )
        .finally(() => this.fetching.delete(conversationId));
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
    const { [conversationId]: _history, ...histories } = this.state.histories;
    this.set({
      conversations: this.state.conversations.filter((c) => c.id !== conversationId),
      histories,
      thread: this.state.thread?.conversationId === conversationId ? null : this.state.thread,
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
    this.set({ openId: conversationId, thread: this.state.thread?.conversationId === conversationId ? this.state.thread : null });
    if (!conversationId) return;
    this.markOpenRead();
    if (!this.state.histories[conversationId]) {
      this.set({ histories: { ...this.state.histories, [conversationId]: { messages: [], firstSeq: undefined, hasMore: false, loading: true } } });
      void this.loadPage(conversationId, undefined);
    }
  }

  /** The page before the oldest loaded message (infinite scroll upwards). */
  loadOlder(conversationId: string) {
    const history = this.state.histories[conversationId];
    if (!history || history.loading || !history.hasMore) return;
    this.set({ histories: { ...this.state.histories, [conversationId]: { ...history, loading: true } } });
    void this.loadPage(conversationId, history.firstSeq);
  }

  private async loadPage(conversationId: string, before: number | undefined) {
    try {
      // The SDK keeps the page in its model; the store moves the start of what is shown.
      const page = await this.chat.messages(conversationId, { before, last: PAGE });
      const history = this.state.histories[conversationId];
      if (!history) return; // left meanwhile
      const firstSeq = page.messages[0]?.seq ?? before ?? 1;
      this.set({ histories: { ...this.state.histories, [conversationId]: { ...history, firstSeq, hasMore: page.hasMore, loading: false } } });
      this.refresh(conversationId);
    } catch (error) {
      const history = this.state.histories[conversationId];
      if (history) this.set({ histories: { ...this.state.histories, [conversationId]: { ...history, loading: false } } });
      this.fail(error);
    }
  }

  /** Opens a message's thread next to the conversation (null closes it). */
  openThread(conversationId: string, rootSeq: number | null) {
    if (rootSeq === null) return this.set({ thread: null });
    this.set({ thread: { conversationId, rootSeq, root: this.chat.local.message(conversationId, rootSeq), replies: [], hasMore: false, loading: true } });
    void this.loadReplies(conversationId, rootSeq, undefined);
  }

  loadEarlierReplies() {
    const thread = this.state.thread;
    if (!thread || thread.loading || !thread.hasMore) return;
    this.set({ thread: { ...thread, loading: true } });
    void this.loadReplies(thread.conversationId, thread.rootSeq, thread.replies[0]?.seq);
  }

  private async loadReplies(conversationId: string, rootSeq: number, before: number | undefined) {
    try {
      const page = await this.chat.loadThread(conversationId, rootSeq, { before, last: 50 });
      const thread = this.state.thread;
      if (thread?.conversationId !== conversationId || thread.rootSeq !== rootSeq) return; // closed meanwhile
      this.set({ thread: { ...thread, hasMore: page.hasMore, loading: false } });
      this.refresh(conversationId);
    } catch (error) {
      const thread = this.state.thread;
      if (thread) this.set({ thread: { ...thread, loading: false } });
      this.fail(error);
    }
  }

  /** Sends a message: in the conversation, quoting `replyToSeq`, or in the thread under `threadRootSeq`. */
  send(conversationId: string, body: string, reply: { replyToSeq?: number | null; threadRootSeq?: number | null } = {}, clientMessageId: string = crypto.randomUUID()) {
    const entry: Outgoing = { clientMessageId, conversationId, body, replyToSeq: reply.replyToSeq ?? null, threadRootSeq: reply.threadRootSeq ?? null, status: 'pending' };
    this.set({ outgoing: [...this.state.outgoing.filter((o) => o.clientMessageId !== clientMessageId), entry] });
    this.chat.stopTyping(conversationId);
    const controller = new AbortController();
    this.aborts.set(clientMessageId, controller);
    // The SDK retries by itself through network failures and reconnects, with
    // the same clientMessageId, so this rejects only for good reasons (or Cancel).
    this.chat
      .send(conversationId, body, { clientMessageId, signal: controller.signal, replyToSeq: entry.replyToSeq, threadRootSeq: entry.threadRootSeq })
      .then(
        () => {},
        (error: unknown) => {
          if (isChatError(error, 'CLOSED')) return;
          const reason = isChatError(error, 'ABORTED') ? 'Not sent' : error instanceof Error ? error.message : String(error);
          this.set({ outgoing: this.state.outgoing.map((o) => (o.clientMessageId === clientMessageId ? { ...o, status: 'failed', error: reason } : o)) });
        },
      )
      .finally(() => this.aborts.delete(clientMessageId));
  }

  /** Stops retrying a pending message (it then shows as failed, with Retry). */
  cancel(clientMessageId: string) {
    this.aborts.get(clientMessageId)?.abort();
  }

  /** Sends a failed message again. The same clientMessageId: if an earlier attempt was stored after all, this returns it instead of a copy. */
  retry(clientMessageId: string) {
    const entry = this.state.outgoing.find((o) => o.clientMessageId === clientMessageId);
    if (entry) this.send(entry.conversationId, entry.body, entry, clientMessageId);
  }

  discard(clientMessageId: string) {
    this.set({ outgoing: this.state.outgoing.filter((o) => o.clientMessageId !== clientMessageId) });
  }

  /**
   * Edits, deletions and reactions. The SDK retries them like sends; the
   * change shows when its event arrives (for everyone the same way), so
   * there is nothing to undo here, only a refusal to report.
   */
  change(write: (chat: ChatClient) => Promise<unknown>) {
    write(this.chat).catch((error: unknown) => !isChatError(error, 'CLOSED') && this.fail(error));
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
