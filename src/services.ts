import type { Config } from './config.js';
import type { ChatEvents } from './chat/events.js';
import { createConversationService } from './chat/conversations.js';
import { createInboxOrder } from './chat/inbox-order.js';
import { createMembershipService } from './chat/membership.js';
import { createMessageChangeService } from './chat/changes.js';
import { createEventLogService } from './chat/event-log.js';
import { createMessageService } from './chat/messages.js';
import { createPresenceRule } from './chat/presence-rule.js';
import { createRateLimiter } from './chat/rate-limit.js';
import { createStreamService } from './chat/streams.js';
import { createTypingService } from './chat/typing.js';
import { createUserService } from './chat/users.js';
import type { Database } from './db/client.js';
import type { AbuseLimits } from './security/abuse.js';

export type Services = ReturnType<typeof createServices>;

/** The business logic: resolvers call these, and nothing else touches the database. */
export function createServices(
  db: Database,
  events: ChatEvents,
  config: Config,
  options: { limits?: Pick<AbuseLimits, 'sends' | 'typing'>; onError?: (error: unknown, what: string) => void } = {},
) {
  const users = createUserService(db);
  const streams = createStreamService(db);
  const inbox = createInboxOrder(db, options.onError ?? (() => {}));
  // Message writes share one budget (sends, edits, deletions, reactions); per process when no shared limits are given.
  const writes = options.limits?.sends ?? createRateLimiter('messages', config.sendRatePerSecond, config.sendBurst);
  return {
    users,
    conversations: createConversationService(db, users, events),
    membership: createMembershipService(db, users, events),
    messages: createMessageService(db, users, events, config, { limit: writes, inbox }),
    changes: createMessageChangeService(db, users, events, config, writes),
    eventLog: createEventLogService(db, users),
    typing: createTypingService(db, events, streams.memberIds, options.limits?.typing),
    streams,
    presenceRule: createPresenceRule(db),
    /** Writes what is deferred (the inbox index's moves for other members) now; before the database pool closes. */
    flush: () => inbox.flush(),
  };
}
