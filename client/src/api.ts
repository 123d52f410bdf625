import {
  AddMembersDocument,
  AddReactionDocument,
  ConversationDocument,
  ConversationsDocument,
  CreateGroupDocument,
  DeleteMessageDocument,
  EditMessageDocument,
  EventsSinceDocument,
  LeaveConversationDocument,
  MarkReadDocument,
  MembersDocument,
  MessagesDocument,
  MessagesSinceDocument,
  RemoveMemberDocument,
  RemoveReactionDocument,
  RenameConversationDocument,
  SendMessageDocument,
  SetTypingDocument,
  StartDirectConversationDocument,
  UserDocument,
  ViewerDocument,
} from './generated/graphql.js';
import { ChatError, ErrorCode } from './errors.js';
import type { HttpTransport } from './http.js';
import type { Attempt } from './outbox.js';
import type { EventFieldsFragment } from './generated/graphql.js';
import type { Conversation, ConversationPage, MemberPage, Message, MessageHistory, MessagesSincePage, User } from './types.js';

/** One event of a conversation's log as eventsSince returns it (the typed union of the query). */
export type LogEvent = EventFieldsFragment;

/** A page of compacted catch-up of a conversation's event log. */
export interface EventsSincePage {
  /** Ascending by eventSeq; each changed thing once, in its current state. */
  events: LogEvent[];
  hasMore: boolean;
  /** Everything up to here is in this page or before it: continue after it. */
  nextAfterEventSeq: number;
  /** The conversation's newest event when the page was read. */
  lastEventSeq: number;
}

/** What a message replies to: another message (a quote), or a thread. */
export interface ReplyOptions {
  /** Quote this message of the same conversation. */
  replyToSeq?: number | null;
  /** Reply in this message's thread (a message that is not itself a thread reply). */
  threadRootSeq?: number | null;
}

/**
 * Typed helpers for every query and mutation, over HTTP. Each resolves with
 * the data or rejects with a ChatError whose `code` says what went wrong.
 * (Sending lives on the session: it adds ids, retries and ordering.)
 */
export interface ChatApi {
  /** The user the token names. */
  viewer(): Promise<User>;
  user(id: string): Promise<User>;
  conversation(id: string): Promise<Conversation>;
  /** The viewer's conversations, most recently active first (`first`: 1 to 100, default 20). */
  conversations(page?: { first?: number; after?: string | null }): Promise<ConversationPage>;
  /** Members ordered by user id (`first`: 1 to 500, default 50). */
  members(conversationId: string, page?: { first?: number; after?: string | null }): Promise<MemberPage>;
  /**
   * History paging backwards: the newest `last` (1 to 100, default 50) before
   * `before`; the whole timeline (thread replies included), or with
   * `threadRootSeq` one thread's replies.
   */
  messages(conversationId: string, page?: { before?: number; last?: number; threadRootSeq?: number }): Promise<MessageHistory>;
  /** Catch-up: messages after `afterSeq`, ascending (`first`: 1 to 500, default 100). */
  messagesSince(conversationId: string, afterSeq: number, page?: { first?: number }): Promise<MessagesSincePage>;
  /**
   * Compacted catch-up of the event log after `afterEventSeq` (`first`: 1 to
   * 1000 changed messages per page, default 500): each changed message once
   * in its current state, each member's latest read position, … The session
   * does this by itself; this is the raw query.
   */
  eventsSince(conversationId: string, afterEventSeq: number, page?: { first?: number }): Promise<EventsSincePage>;
  /** The direct conversation with `userId`, created on first call. Idempotent. */
  startDirectConversation(userId: string): Promise<Conversation>;
  createGroup(title: string, memberIds: string[]): Promise<Conversation>;
  addMembers(conversationId: string, userIds: string[]): Promise<Conversation>;
  /** The owner removes someone from a group. */
  removeMember(conversationId: string, userId: string): Promise<Conversation>;
  /** The viewer leaves a group; resolves with its id. */
  leaveConversation(conversationId: string): Promise<string>;
  /** Moves the viewer's read position forward to `seq` (never backward). */
  markRead(conversationId: string, seq: number): Promise<Conversation>;
  /** Tells the other members the viewer is typing (or stopped). */
  setTyping(conversationId: string, typing?: boolean): Promise<boolean>;
  /** Gives a group a new title (any member may). */
  renameConversation(conversationId: string, title: string): Promise<Conversation>;
  /**
   * Stores a message once per `clientMessageId`: a single attempt, no retry.
   * Prefer the session's `send`, which retries safely.
   */
  sendMessage(conversationId: string, body: string, clientMessageId: string, reply?: ReplyOptions): Promise<Message>;
  /**
   * The sender replaces a message's body (one attempt; the session's `edit`
   * retries). `attempt.fence`: see {@link ChangeFence}; a retry of your own
   * should send one, with a higher token each attempt, and go out with
   * `freshConnection` after a timeout.
   */
  editMessage(conversationId: string, seq: number, body: string, attempt?: Partial<Attempt>): Promise<Message>;
  /** The sender, or a group's owner, deletes a message (one attempt; the session's `delete` retries). */
  deleteMessage(conversationId: string, seq: number, attempt?: Partial<Attempt>): Promise<Message>;
  /** Adds the viewer's reaction (one attempt; the session's `react` retries). */
  addReaction(conversationId: string, seq: number, reaction: string, attempt?: Partial<Attempt>): Promise<Message>;
  /** Removes the viewer's reaction (one attempt; the session's `unreact` retries). */
  removeReaction(conversationId: string, seq: number, reaction: string, attempt?: Partial<Attempt>): Promise<Message>;
}

/**
 * A mutation's result. Mutation fields are nullable (several in one operation
 * each report their own outcome), but one that failed comes with its error,
 * which the transport has already thrown: null here is a server bug.
 */
export function present<T>(value: T | null, field: string): T {
  if (value === null) throw new ChatError(ErrorCode.INTERNAL_SERVER_ERROR, `The server answered ${field} without a result`);
  return value;
}

export function createChatApi(http: HttpTransport): ChatApi {
  const run = http.execute.bind(http);
  return {
    viewer: async () => (await run(ViewerDocument, {})).viewer,
    user: async (id) => (await run(UserDocument, { id })).user,
    conversation: async (id) => (await run(ConversationDocument, { id })).conversation,
    async conversations(page = {}) {
      const { conversations } = await run(ConversationsDocument, { first: page.first, after: page.after });
      return {
        conversations: conversations.edges.map((edge) => edge.node),
        hasNextPage: conversations.pageInfo.hasNextPage,
        endCursor: conversations.pageInfo.endCursor,
      };
    },
    async members(conversationId, page = {}) {
      const { members } = (await run(MembersDocument, { conversationId, first: page.first, after: page.after })).conversation;
      return {
        members: members.edges.map((edge) => edge.node),
        hasNextPage: members.pageInfo.hasNextPage,
        endCursor: members.pageInfo.endCursor,
      };
    },
    messages: async (conversationId, page = {}) =>
      (await run(MessagesDocument, { conversationId, before: page.before, last: page.last, threadRootSeq: page.threadRootSeq })).messages,
    messagesSince: async (conversationId, afterSeq, page = {}) =>
      (await run(MessagesSinceDocument, { conversationId, afterSeq, first: page.first })).messagesSince,
    eventsSince: async (conversationId, afterEventSeq, page = {}) =>
      (await run(EventsSinceDocument, { conversationId, afterEventSeq, first: page.first })).eventsSince,
    startDirectConversation: async (userId) => present((await run(StartDirectConversationDocument, { userId })).startDirectConversation, 'startDirectConversation'),
    createGroup: async (title, memberIds) => present((await run(CreateGroupDocument, { title, memberIds })).createGroup, 'createGroup'),
    addMembers: async (conversationId, userIds) => present((await run(AddMembersDocument, { conversationId, userIds })).addMembers, 'addMembers'),
    removeMember: async (conversationId, userId) => present((await run(RemoveMemberDocument, { conversationId, userId })).removeMember, 'removeMember'),
    leaveConversation: async (conversationId) => present((await run(LeaveConversationDocument, { conversationId })).leaveConversation, 'leaveConversation'),
    markRead: async (conversationId, seq) => present((await run(MarkReadDocument, { conversationId, seq })).markRead, 'markRead'),
    setTyping: async (conversationId, typing = true) => present((await run(SetTypingDocument, { conversationId, typing })).setTyping, 'setTyping'),
    renameConversation: async (conversationId, title) =>
      present((await run(RenameConversationDocument, { conversationId, title })).renameConversation, 'renameConversation'),
    sendMessage: async (conversationId, body, clientMessageId, reply = {}) =>
      present(
        (await run(SendMessageDocument, { conversationId, body, clientMessageId, replyToSeq: reply.replyToSeq, threadRootSeq: reply.threadRootSeq })).sendMessage,
        'sendMessage',
      ),
    editMessage: async (conversationId, seq, body, { fence, freshConnection } = {}) =>
      present((await run(EditMessageDocument, { conversationId, seq, body, fence }, { freshConnection })).editMessage, 'editMessage'),
    deleteMessage: async (conversationId, seq, { fence, freshConnection } = {}) =>
      present((await run(DeleteMessageDocument, { conversationId, seq, fence }, { freshConnection })).deleteMessage, 'deleteMessage'),
    addReaction: async (conversationId, seq, reaction, { fence, freshConnection } = {}) =>
      present((await run(AddReactionDocument, { conversationId, seq, reaction, fence }, { freshConnection })).addReaction, 'addReaction'),
    removeReaction: async (conversationId, seq, reaction, { fence, freshConnection } = {}) =>
      present((await run(RemoveReactionDocument, { conversationId, seq, reaction, fence }, { freshConnection })).removeReaction, 'removeReaction'),
  };
}
