import type { LiveMessage, LocalMember, Message, MemberRole, QuotedMessage, ReadReceipt, User } from './types.js';

const quote = (m: Message): QuotedMessage => ({ seq: m.seq, eventSeq: m.eventSeq, body: m.body, deleted: m.deleted, editedAt: m.editedAt, sender: m.sender });

/**
 * A change to the member list, as the event log tells it. Kept while the list
 * loads (see {@link ConversationModel.startLoadingMembers}): whether the read
 * saw it or not, applying it again on top gives the right result, because
 * each op sets a state rather than adding to one.
 */
export type MemberOp =
  | { kind: 'join'; user: User; role: MemberRole; lastReadSeq: number }
  | { kind: 'leave'; user: User; newOwner: User | null }
  | { kind: 'read'; user: User; lastReadSeq: number };

/**
 * One conversation as the session holds it: its messages in their current
 * state (by seq, tombstones included), its title, and (once asked for) its
 * members with their read positions. Nothing here does I/O; the sequencer
 * (sequencer.ts) decides what gets applied, in which order.
 */
export class ConversationModel {
  readonly messages = new Map<number, Message>();
  /** Undefined until the session has read it (conversation list, join) or an event set it. */
  title: string | null | undefined;
  /** Undefined until loaded (ChatClient.readReceipts / onReadReceipts), then kept current. */
  members: Map<string, LocalMember> | undefined;
  /** While the member list loads: the member events applied meanwhile, to replay on top of it. */
  private pendingOps: MemberOp[] | undefined;
  /** The highest message seq known to exist. */
  lastSeq = 0;
  /** Messages that show another one (a reply's quote, a root's last reply), by the seq they show. */
  private readonly shownIn = new Map<number, Set<number>>();

  /**
   * Stores a message's state unless the model already holds a newer one
   * (`eventSeq` says which change a state is the result of). `authoritative`:
   * the state comes from a query or a mutation answer, whose
   * `reactedByViewer` flags are the server's, so it also replaces a state of
   * the same event (whose flags the session worked out itself).
   */
  put(message: Message, authoritative: boolean): Message {
    const stored = this.messages.get(message.seq);
    if (!stored || message.eventSeq > stored.eventSeq || (authoritative && message.eventSeq === stored.eventSeq)) {
      this.messages.set(message.seq, this.showing(message));
      this.reshow(message);
    }
    if (message.seq > this.lastSeq) this.lastSeq = message.seq;
    return this.messages.get(message.seq)!;
  }

  /**
   * A payload quotes other messages as they were when it was rendered: show
   * them as the model holds them now (a quote of a message edited or deleted
   * since shows the edit, or the tombstone), and remember who shows whom.
   */
  private showing(message: Message): Message {
    let shown = message;
    const quoted: [number | null, QuotedMessage | null][] = [
      [message.replyToSeq, message.replyTo],
      [message.threadLastReplySeq, message.threadLastReply],
    ];
    for (const [seq, payload] of quoted) {
      if (seq === null) continue;
      let by = this.shownIn.get(seq);
      if (!by) this.shownIn.set(seq, (by = new Set()));
      by.add(message.seq);
      const target = this.messages.get(seq);
      if (target && (!payload || target.eventSeq >= payload.eventSeq)) shown = this.withQuote(shown, target);
    }
    return shown;
  }

  private withQuote(message: Message, target: Message): Message {
    const now = quote(target);
    return {
      ...message,
      replyTo: message.replyToSeq === target.seq ? now : message.replyTo,
      threadLastReply: message.threadLastReplySeq === target.seq ? now : message.threadLastReply,
    };
  }

  /** `target` changed: messages quoting it show its new state. */
  private reshow(target: Message): void {
    for (const seq of this.shownIn.get(target.seq) ?? []) {
      const message = this.messages.get(seq);
      if (message && message.seq !== target.seq) this.messages.set(seq, this.withQuote(message, target));
    }
  }

  /**
   * A live payload carries reaction counts without the viewer's flag (that
   * would make the server render it per subscriber). The flags come from
   * what the model knew of the message, moved by the event if its actor is
   * the viewer (this session or another one of the same user).
   */
  withViewerFlags(live: LiveMessage, viewerId: string | undefined, event?: { action: string; actor: User | null; reaction: string | null }): Message {
    const previous = this.messages.get(live.seq);
    const mine = new Set(previous?.reactions.filter((r) => r.reactedByViewer).map((r) => r.reaction));
    if (event?.reaction && event.actor && event.actor.id === viewerId) {
      if (event.action === 'REACTION_ADDED') mine.add(event.reaction);
      else if (event.action === 'REACTION_REMOVED') mine.delete(event.reaction);
    }
    return { ...live, reactions: live.reactions.map((r) => ({ ...r, reactedByViewer: mine.has(r.reaction) })) };
  }

  /** Whether `live`'s reactions differ from what the model holds (so the viewer's flags may be stale). */
  reactionsDiffer(live: LiveMessage): boolean {
    const previous = this.messages.get(live.seq)?.reactions ?? [];
    return previous.length !== live.reactions.length || live.reactions.some((r, i) => previous[i]?.reaction !== r.reaction || previous[i]?.count !== r.count);
  }

  /**
   * Applies a member change if the list is loaded, and keeps it for the
   * replay if it is loading. True if the loaded list changed.
   */
  applyMemberOp(op: MemberOp): boolean {
    this.pendingOps?.push(op);
    return this.members ? applyOp(this.members, op) : false;
  }

  startLoadingMembers(): void {
    this.pendingOps = [];
  }

  /** The list as read; the member events applied while it was being read are replayed on top, in order. */
  finishLoadingMembers(read: LocalMember[]): void {
    const members = new Map(read.map((m) => [m.user.id, m]));
    for (const op of this.pendingOps ?? []) applyOp(members, op);
    this.pendingOps = undefined;
    this.members = members;
  }

  abortLoadingMembers(): void {
    this.pendingOps = undefined;
  }

  receipts(): ReadReceipt[] | undefined {
    return this.members && [...this.members.values()].map(({ user, lastReadSeq }) => ({ user, lastReadSeq }));
  }
}

function applyOp(members: Map<string, LocalMember>, op: MemberOp): boolean {
  switch (op.kind) {
    case 'join':
      members.set(op.user.id, { user: op.user, role: op.role, lastReadSeq: op.lastReadSeq });
      return true;
    case 'leave': {
      const owner = op.newOwner && members.get(op.newOwner.id);
      if (owner) members.set(owner.user.id, { ...owner, role: 'OWNER' });
      return members.delete(op.user.id) || Boolean(owner);
    }
    case 'read': {
      const member = members.get(op.user.id);
      // Read positions never move backward.
      if (!member || op.lastReadSeq <= member.lastReadSeq) return false;
      members.set(op.user.id, { ...member, lastReadSeq: op.lastReadSeq });
      return true;
    }
  }
}

/**
 * What the application reads from the session's local model
 * (`chat.local`): each conversation's messages in their current state, as
 * far as the session has seen or loaded them, kept up to date by the event
 * log. Every call returns a fresh array: cache what you render.
 */
export interface LocalModel {
  /** One message in its current state, if the session holds it. */
  message(conversationId: string, seq: number): Message | undefined;
  /**
   * The conversation's messages the session holds, ascending by seq:
   * everything since the session started (or since `fromSeq`) plus the
   * history you loaded. Thread replies are left out (they are under their
   * root: `thread()`) unless `threadReplies` is true.
   */
  timeline(conversationId: string, options?: { fromSeq?: number; threadReplies?: boolean }): Message[];
  /** A thread's replies the session holds (live ones, and pages you loaded with `loadThread`), ascending. */
  thread(conversationId: string, threadRootSeq: number): Message[];
  /** The title, once the session knows it (null for a direct conversation). */
  title(conversationId: string): string | null | undefined;
  /** Members with their roles and read positions, once loaded (`readReceipts` / `onReadReceipts`). */
  members(conversationId: string): LocalMember[] | undefined;
}

/** Every conversation's model, created on first use and dropped when the viewer leaves. */
export class LocalStore implements LocalModel {
  private readonly conversations = new Map<string, ConversationModel>();

  model(conversationId: string): ConversationModel {
    let model = this.conversations.get(conversationId);
    if (!model) this.conversations.set(conversationId, (model = new ConversationModel()));
    return model;
  }

  peek(conversationId: string): ConversationModel | undefined {
    return this.conversations.get(conversationId);
  }

  drop(conversationId: string): void {
    this.conversations.get(conversationId)?.abortLoadingMembers();
    this.conversations.delete(conversationId);
  }

  message(conversationId: string, seq: number): Message | undefined {
    return this.conversations.get(conversationId)?.messages.get(seq);
  }

  timeline(conversationId: string, options: { fromSeq?: number; threadReplies?: boolean } = {}): Message[] {
    const from = options.fromSeq ?? 0;
    const messages = [...(this.conversations.get(conversationId)?.messages.values() ?? [])];
    return messages.filter((m) => m.seq >= from && (options.threadReplies || m.threadRootSeq === null)).sort((a, b) => a.seq - b.seq);
  }

  thread(conversationId: string, threadRootSeq: number): Message[] {
    const messages = [...(this.conversations.get(conversationId)?.messages.values() ?? [])];
    return messages.filter((m) => m.threadRootSeq === threadRootSeq).sort((a, b) => a.seq - b.seq);
  }

  title(conversationId: string): string | null | undefined {
    return this.conversations.get(conversationId)?.title;
  }

  members(conversationId: string): LocalMember[] | undefined {
    const members = this.conversations.get(conversationId)?.members;
    return members && [...members.values()];
  }
}
