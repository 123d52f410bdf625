import { builder } from '../builder.js';
import type { UserRecord } from '../chat/records.js';
import { requireViewer } from '../context.js';
import { notFound } from '../errors.js';

export const User = builder.objectRef<UserRecord>('User').implement({
  description: 'A person. Their id is the `sub` of their token; the name comes from its `name` claim.',
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name'),
    online: t.boolean({
      description: 'Connected to any instance right now (a crashed instance\'s users drop off within PRESENCE_TTL_MS).',
      resolve: (user, _args, context) => context.loaders.online.load(user.id),
    }),
    lastSeenAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'When the user last came online or went offline; null if never connected.',
      resolve: (user, _args, context) => context.loaders.lastSeenAt.load(user.id),
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
