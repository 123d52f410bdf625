import DataLoader from 'dataloader';
import type { Viewer } from './auth.js';
import type { MessageRecord } from './chat/records.js';
import type { Services } from './services.js';
import { unauthenticated } from './errors.js';
import type { Realtime } from './realtime/index.js';

export interface Loaders {
  lastMessage: DataLoader<{ id: string; lastSeq: number }, MessageRecord | null, string>;
  /** Messages by (conversation, seq): reply targets, threads' last replies. */
  message: DataLoader<{ conversationId: string; seq: number }, MessageRecord | null, string>;
  /** The viewer's own reactions on a message. */
  ownReactions: DataLoader<{ conversationId: string; seq: number }, string[], string>;
  online: DataLoader<string, boolean>;
  lastSeenAt: DataLoader<string, Date | null>;
  /** Whether the viewer may see a user's presence (src/chat/presence-rule.ts). */
  presenceVisible: DataLoader<string, boolean>;
}

export interface Context {
  /** The authenticated user, or null for an anonymous HTTP request (introspection only). */
  readonly viewer: Viewer | null;
  readonly services: Services;
  readonly realtime: Realtime;
  /**
   * Batching and short-lived caching for resolvers: loaders are replaced
   * after a second, so batching works within one execution and a
   * long-lived subscription never gets a stale answer (presence) for long.
   */
  readonly loaders: Loaders;
}

const LOADER_LIFETIME_MS = 1000;

/**
 * A context that is its own loaders: it creates each loader on first use and
 * replaces it after a second. Subscription contexts live for hours and
 * number in the tens of thousands, and most never load anything, so the
 * loaders cost one cache field until used, and no object of their own.
 */
abstract class LoadingContext implements Loaders {
  /** Itself: an own property, so that Yoga's copy of an HTTP context (Object.assign) keeps it. */
  readonly loaders: Loaders = this;
  private cache: Partial<Loaders> | undefined;
  private createdAt = 0;

  constructor(
    readonly services: Services,
    readonly realtime: Realtime,
    /** Whose reactions and presence rules the loaders read; null in a shared context. */
    private readonly loadsFor: Viewer | null,
  ) {}

  private fresh(): Partial<Loaders> {
    const now = Date.now();
    if (!this.cache || now - this.createdAt > LOADER_LIFETIME_MS) {
      this.cache = {};
      this.createdAt = now;
    }
    return this.cache;
  }

  get lastMessage() {
    const services = this.services;
    return (this.fresh().lastMessage ??= new DataLoader(
      async (keys: readonly { id: string; lastSeq: number }[]) => {
        const found = await services.messages.latest(keys);
        return keys.map((key) => found.get(key.id) ?? null);
      },
      { cacheKeyFn: (key) => `${key.id}:${key.lastSeq}` },
    ));
  }

  get message() {
    const services = this.services;
    return (this.fresh().message ??= new DataLoader(
      async (keys: readonly { conversationId: string; seq: number }[]) => {
        const found = await services.messages.bySeq(keys);
        return keys.map((key) => found.get(`${key.conversationId}:${key.seq}`) ?? null);
      },
      { cacheKeyFn: (key) => `${key.conversationId}:${key.seq}` },
    ));
  }

  get ownReactions() {
    const services = this.services;
    const viewer = this.loadsFor;
    return (this.fresh().ownReactions ??= new DataLoader(
      async (keys: readonly { conversationId: string; seq: number }[]) => {
        if (!viewer) return keys.map(() => []);
        const found = await services.changes.ownReactions(viewer.id, keys);
        return keys.map((key) => found.get(`${key.conversationId}:${key.seq}`) ?? []);
      },
      { cacheKeyFn: (key) => `${key.conversationId}:${key.seq}` },
    ));
  }

  get online() {
    const realtime = this.realtime;
    return (this.fresh().online ??= new DataLoader(async (ids: readonly string[]) => {
      const online = new Set(await realtime.onlineAmong(ids));
      return ids.map((id) => online.has(id));
    }));
  }

  get lastSeenAt() {
    const services = this.services;
    return (this.fresh().lastSeenAt ??= new DataLoader(async (ids: readonly string[]) => {
      const found = await services.users.lastSeen(ids);
      return ids.map((id) => found.get(id) ?? null);
    }));
  }

  get presenceVisible() {
    const { services, loadsFor: viewer } = this;
    return (this.fresh().presenceVisible ??= new DataLoader(async (ids: readonly string[]) => {
      const visible = viewer === null ? new Set<string>() : await services.presenceRule.visibleTo(viewer.id, ids);
      return ids.map((id) => visible.has(id));
    }));
  }
}

/**
 * A context as a class: every context shares one hidden class. The object
 * literal it replaced (`{ ...parts, loaders }`) ended up with a hidden class
 * of its own per connection in the server (about 190 bytes each, seen in
 * heap snapshots), a cost paid by every idle WebSocket.
 */
class OperationContext extends LoadingContext implements Context {
  constructor(
    readonly viewer: Viewer | null,
    services: Services,
    realtime: Realtime,
  ) {
    super(services, realtime, viewer);
  }
}

/** The one context factory, for every transport: HTTP (through Yoga), WebSocket and SSE alike. */
export function createContext(parts: { viewer: Viewer | null; services: Services; realtime: Realtime }): Context {
  return new OperationContext(parts.viewer, parts.services, parts.realtime);
}

/** See {@link createSharedContext}: `viewer` is an accessor that throws. */
class SharedContext extends LoadingContext implements Context {
  constructor(services: Services, realtime: Realtime) {
    super(services, realtime, null);
  }
  get viewer(): Viewer | null {
    throw new Error('A field that depends on the viewer was selected in a shared subscription payload');
  }
}

/**
 * The context in which a subscription payload is rendered once for many
 * subscribers. It has no viewer on purpose: a field that depends on who is
 * looking cannot be shared, and touching `viewer` here fails loudly (in
 * tests) instead of leaking one user's view to another.
 */
export function createSharedContext(services: Services, realtime: Realtime): Context {
  return new SharedContext(services, realtime);
}

export function requireViewer(context: Context): Viewer {
  if (!context.viewer) throw unauthenticated();
  return context.viewer;
}
