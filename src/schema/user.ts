import { builder } from '../builder.js';
import type { UserRecord } from '../chat/records.js';
import { requireViewer, type Context } from '../context.js';
import { forbidden, notFound } from '../errors.js';

/**
 * Users reached through one of the viewer's conversations (its members, the
 * senders of its messages, who is typing in it, whose presence it watches):
 * their presence is visible by the rule (README, "Presence and privacy")
 * without a query, and without touching the viewer, which a shared live
 * payload does not have. Any other path to a User (`user(id:)`, and any
 * added later) is checked.
 */
const reachedThroughConversation = new WeakSet<UserRecord>();

/** Marks a user as reached through one of the viewer's conversations (see above). */
export function viaConversation(user: UserRecord): UserRecord {
  reachedThroughConversation.add(user);
  return user;
}

/** One rule for presence, in queries as in the `presence` subscription: yourself, and people you share a conversation with. */
async function requirePresenceVisible(user: UserRecord, context: Context): Promise<void> {
  if (reachedThroughConversation.has(user)) return;
  const viewer = requireViewer(context);
  if (viewer.id === user.id || (await context.loaders.presenceVisible.load(user.id))) return;
  throw forbidden('Presence is visible only to people who share a conversation with this user');
}

export const User = builder.objectRef<UserRecord>('User').implement({
  description: 'A person. Their id is the `sub` of their token; the name comes from its `name` claim.',
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name'),
    online: t.boolean({
      description:
        'Connected to any instance right now, or their last connection ended less than PRESENCE_GRACE_MS ago (a reconnect shows no change; a crashed instance\'s users drop off within PRESENCE_TTL_MS). Visible to the user and to people who share a conversation with them; FORBIDDEN to anyone else.',
      resolve: async (user, _args, context) => {
        await requirePresenceVisible(user, context);
        return context.loaders.online.load(user.id);
      },
    }),
    lastSeenAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'When the user last came online or went offline (for going offline: when their last connection ended); null if never connected. Visible as `online` is.',
      resolve: async (user, _args, context) => {
        await requirePresenceVisible(user, context);
        return context.loaders.lastSeenAt.load(user.id);
      },
    }),
  }),
});

builder.queryFields((t) => ({
  viewer: t.field({
    type: User,
    description: 'The user the bearer token names.',
    resolve: (_root, _args, context) => {
      const viewer = requireViewer(context);
      return { id: viewer.id, name: viewer.name };
    },
  }),
  user: t.field({
    type: User,
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, args, context) => {
      requireViewer(context);
      const user = await context.services.users.get(String(args.id));
      if (!user) throw notFound(`User ${args.id} not found`);
      return user;
    },
  }),
}));
