import DataLoader from 'dataloader';
import type { WebSocket } from 'ws';
import type { Viewer } from './auth.js';
import type { MessageRecord } from './chat/records.js';
import type { Services } from './services.js';
import { unauthenticated } from './errors.js';
import type { Realtime } from './realtime/index.js';

/** Set when an operation arrived over graphql-ws: lets subscriptions write straight to the socket. */
export interface SocketTransport {
  socket: WebSocket;
  /** The graphql-ws operation id. */
  id: string;
  /** This connection's id (logs, presence). */
  connectionId: string;
  /** Variables as the client sent them (before coercion), for re-execution. */
  variables: Record<string, unknown> | undefined;
}

export interface Loaders {
  lastMessage: DataLoader<{ id: string; lastSeq: number }, MessageRecord | null, string>;
  online: DataLoader<string, boolean>;
  lastSeenAt: DataLoader<string, Date | null>;
}

export interface Context {
  /** The authenticated user, or null for an anonymous HTTP request (introspection only). */
  readonly viewer: Viewer | null;
  readonly services: Services;
  readonly realtime: Realtime;
  /**
   * Batching and short-lived caching for resolvers. Subscription contexts live
   * for hours, so loaders are replaced after a second: batching within one
   * execution, never a stale answer (presence changes) for long.
   */
  readonly loaders: Loaders;
  readonly transport?: SocketTransport;
}

const LOADER_LIFETIME_MS = 1000;

function createLoaders(services: Services, realtime: Realtime): Loaders {
  return {
    online: new DataLoader(async (ids) => {
      const online = new Set(await realtime.onlineAmong(ids));
      return ids.map((id) => online.has(id));
    }),
    lastSeenAt: new DataLoader(async (ids) => {
      const found = await services.users.lastSeen(ids);
      return ids.map((id) => found.get(id) ?? null);
    }),
    lastMessage: new DataLoader(
      async (keys) => {
        const found = await services.messages.latest(keys);
        return keys.map((key) => found.get(key.id) ?? null);
      },
      { cacheKeyFn: (key) => `${key.id}:${key.lastSeq}` },
    ),
  };
}

export function createContext(parts: {
  viewer: Viewer | null;
  services: Services;
  realtime: Realtime;
  transport?: SocketTransport;
}): Context {
  let loaders: Loaders | undefined;
  let createdAt = 0;
  return {
    ...parts,
    get loaders() {
      const now = Date.now();
      if (!loaders || now - createdAt > LOADER_LIFETIME_MS) {
        loaders = createLoaders(parts.services, parts.realtime);
        createdAt = now;
      }
      return loaders;
    },
  };
}

/**
 * The context in which a subscription payload is rendered once for many
 * subscribers. It has no viewer on purpose: a field that depends on who is
 * looking cannot be shared, and touching `viewer` here fails loudly (in
 * tests) instead of leaking one user's view to another.
 */
export function createSharedContext(services: Services, realtime: Realtime): Context {
  const context = createContext({ viewer: null, services, realtime });
  Object.defineProperty(context, 'viewer', {
    get() {
      throw new Error('A field that depends on the viewer was selected in a shared subscription payload');
    },
  });
  return context;
}

export function requireViewer(context: Context): Viewer {
  if (!context.viewer) throw unauthenticated();
  return context.viewer;
}
