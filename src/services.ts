import type { Config } from './config.js';
import type { ChatEvents } from './chat/events.js';
import { createConversationService } from './chat/conversations.js';
import { createInboxOrder } from './chat/inbox-order.js';
import { createMembershipService } from './chat/membership.js';
import { createMessageService } from './chat/messages.js';
import { createStreamService } from './chat/streams.js';
import { createTypingService } from './chat/typing.js';
import { createUserService } from './chat/users.js';
import type { Database } from './db/client.js';

export type Services = ReturnType<typeof createServices>;

/** The business logic: resolvers call these, and nothing else touches the database. */
export function createServices(db: Database, events: ChatEvents, config: Config, onError: (error: unknown, what: string) => void = () => {}) {
  const users = createUserService(db);
  const streams = createStreamService(db);
  const inbox = createInboxOrder(db, onError);
  return {
    users,
    conversations: createConversationService(db, users, events),
    membership: createMembershipService(db, users, events),
    messages: createMessageService(db, users, events, config, inbox),
    typing: createTypingService(db, events, streams.memberIds),
    streams,
  };
}
