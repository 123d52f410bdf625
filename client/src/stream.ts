import { stringifyDocument } from '@urql/core';
import type { Connection } from './connection.js';
import { ChatError, ErrorCode, fromGraphQLError, toChatError } from './errors.js';
import { EventsDocument, type EventsSubscription } from './generated/graphql.js';
import type { StreamEvent } from './sequencer.js';
import type { DepartureReason } from './types.js';

export interface StreamHandlers {
  /** An event of a conversation's log. */
  event(event: StreamEvent): void;
  /** `afterSeq` / `afterEventSeq`: exactly where the server starts this conversation on the stream. */
  joined(conversationId: string, afterSeq: number, afterEventSeq: number): void;
  left(conversationId: string, reason: DepartureReason): void;
  /** The subscription ended without the socket closing (an error, or the server completed it). */
  ended(error: ChatError): void;
}

const EVENTS_QUERY = stringifyDocument(EventsDocument);

/**
 * Starts the `events` subscription from per-conversation event cursors: the
 * server first sends what changed after each cursor (compacted), then
 * continues live with no gap. Returns the unsubscribe. The caller ignores
 * whatever a superseded subscription still delivers; this module only
 * translates frames into typed events.
 */
export function subscribeEvents(connection: Connection, cursors: { conversationId: string; afterEventSeq: number }[], handlers: StreamHandlers): () => void {
  // announce: the server also reports, with its exact starting positions,
  // every conversation missing from our cursors (one created or joined
  // between our last list read and the subscription starting).
  const variables = { cursors, announce: true };
  let stopped = false;
  const dispose = connection.subscribe<EventsSubscription>(
    { query: EVENTS_QUERY, variables },
    {
      next(result) {
        if (stopped) return;
        const event = result.data?.events;
        if (!event) {
          // An event the server could not render: the stream's guarantees no
          // longer hold, so end it and let the session resume from its cursors.
          stopped = true;
          dispose();
          handlers.ended(result.errors?.[0] ? fromGraphQLError(result.errors[0]) : new ChatError(ErrorCode.INTERNAL_SERVER_ERROR, 'Empty event'));
          return;
        }
        switch (event.__typename) {
          case 'ConversationJoined':
            handlers.joined(event.conversationId, event.afterSeq, event.afterEventSeq);
            return;
          case 'ConversationLeft':
            handlers.left(event.conversationId, event.reason);
            return;
          default:
            handlers.event(event);
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
        handlers.ended(new ChatError(ErrorCode.INTERNAL_SERVER_ERROR, 'The server ended the events subscription'));
      },
    },
  );
  return () => {
    stopped = true;
    dispose();
  };
}
