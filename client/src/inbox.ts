import { stringifyDocument } from '@urql/core';
import type { Connection } from './connection.js';
import { ChatError, ErrorCode, fromGraphQLError, toChatError } from './errors.js';
import { InboxDocument, type InboxSubscription } from './generated/graphql.js';
import type { Conversation, Cursors, DepartureReason, Message } from './types.js';

export interface InboxHandlers {
  message(message: Message): void;
  /** `afterSeq`: exactly where the server starts this conversation on the stream. */
  joined(conversationId: string, conversation: Conversation | null, afterSeq: number): void;
  left(conversationId: string, reason: DepartureReason): void;
  /** The subscription ended without the socket closing (an error, or the server completed it). */
  ended(error: ChatError): void;
}

const INBOX_QUERY = stringifyDocument(InboxDocument);

/**
 * Starts the `inbox` subscription resuming from `cursors`: the server replays
 * what is stored after each cursor, then continues live. Returns the
 * unsubscribe. The caller ignores whatever a superseded subscription still
 * delivers; this module only translates frames into typed events.
 */
export function subscribeInbox(connection: Connection, cursors: Cursors, handlers: InboxHandlers): () => void {
  // announce: the server also reports, with its exact starting seq, every
  // conversation missing from our cursors (one created or joined between our
  // last list read and the subscription starting).
  const variables = {
    cursors: Object.entries(cursors).map(([conversationId, afterSeq]) => ({ conversationId, afterSeq })),
    announce: true,
  };
  let stopped = false;
  const dispose = connection.subscribe<InboxSubscription>(
    { query: INBOX_QUERY, variables },
    {
      next(result) {
        if (stopped) return;
        const event = result.data?.inbox;
        if (!event) {
          // An event the server could not render: the stream's guarantees no
          // longer hold, so end it and let the session resume from its cursors.
          stopped = true;
          dispose();
          handlers.ended(result.errors?.[0] ? fromGraphQLError(result.errors[0]) : new ChatError(ErrorCode.INTERNAL_SERVER_ERROR, 'Empty inbox event'));
          return;
        }
        switch (event.__typename) {
          case 'Message': {
            const { __typename, ...message } = event;
            handlers.message(message);
            return;
          }
          case 'ConversationJoined':
            handlers.joined(event.conversationId, event.conversation, event.afterSeq);
            return;
          case 'ConversationLeft':
            handlers.left(event.conversationId, event.reason);
            return;
        }
      },
      error(error) {
        if (stopped) return;
        stopped = true;
        handlers.ended(toChatError(error));
      },
      complete() {
        if (stopped) return;
        stopped = true;
        handlers.ended(new ChatError(ErrorCode.INTERNAL_SERVER_ERROR, 'The server ended the inbox subscription'));
      },
    },
  );
  return () => {
    stopped = true;
    dispose();
  };
}
