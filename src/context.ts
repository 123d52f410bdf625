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
  /** Variables as the client sent them (before coercion), for re-execution. */
  variables: Record<string, unknown> | undefined;
}

export interface Loaders {
  lastMessage: DataLoader<{ id: string; lastSeq: number }, MessageRecord | null, string>;
}

export interface Context {
  /** The authenticated user, or null for an anonymous HTTP request (introspection only). */
  readonly viewer: Viewer | null;
  readonly services: Services;
  readonly realtime: Realtime;
  /** Per-operation batching; created on first use. */
  readonly loaders: Loaders;
  readonly transport?: SocketTransport;
}

function createLoaders(services: Services): Loaders {
  return {
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
  return {
    ...parts,
    get loaders() {
      return (loaders ??= createLoaders(parts.services));
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
