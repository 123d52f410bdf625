import { Redis, type Cluster } from 'ioredis';
import { decodeEvent, dispatch, encodeEvent, holdHandler, releaseHandler, type Broker, type BusEvent, type BusHandler, type ChannelHandlers } from './broker.js';
import { keySlot } from './key-slot.js';
import { commandConnection, whenReady, type RedisEndpoint } from './redis-connection.js';

/** One subscriber connection to one master, holding the channels whose slots it serves. */
interface NodeLink {
  readonly key: string;
  readonly redis: Redis;
  /** Channels placed on this link (subscribed, or their SSUBSCRIBE on the way). */
  readonly channels: Set<string>;
  /** Settles when the link is lost. */
  readonly lost: Promise<void>;
  alive: boolean;
}

interface Placement {
  link: NodeLink;
  /** The SSUBSCRIBE reply. */
  acked: Promise<void>;
}

/** How often the slot map is re-read, to notice a failover or a slot migration that did not cut our connection. */
const TOPOLOGY_CHECK_MS = 2000;
const REPAIR_BACKOFF_MS = [50, 100, 200, 400, 800, 1000];

type Slots = [number, number, [string, number, ...unknown[]], ...unknown[]][];

/**
 * The broker over a Redis Cluster, with sharded pub/sub (SPUBLISH /
 * SSUBSCRIBE, Redis 7): an event goes only to the nodes of its channel's
 * shard, instead of being broadcast over the whole cluster bus as PUBLISH is
 * (docs/architecture.md, "Redis Cluster").
 *
 * Publishing goes through an ioredis Cluster, which sends each SPUBLISH to the
 * master serving the channel's slot and follows failovers. Subscribing is
 * ours: one connection per master that serves a channel we want, each channel
 * SSUBSCRIBEd on the master of its slot. The contract of Broker holds as for a
 * single Redis:
 *
 * - `subscribe` resolves once Redis acknowledged the SSUBSCRIBE, or at once
 *   while the channel's shard is unreachable;
 * - when a master is lost (its connection closes), its slots move (a failover
 *   or a migration: the slot map says so, or Redis answers MOVED), the
 *   affected channels are placed again on whoever serves their slots now, and
 *   once every wanted channel is subscribed again and acknowledged,
 *   `onReconnect` listeners run: the hub's position check then reads what was
 *   published meanwhile (docs/architecture.md, "The delivery bound and the position check").
 */
export async function createRedisClusterBroker(endpoint: Extract<RedisEndpoint, { kind: 'cluster' }>, name: string): Promise<Broker> {
  const publisher = commandConnection(endpoint, name) as Cluster;
  publisher.on('error', () => {});
  await whenReady(publisher, endpoint.describe);

  const wanted = new Map<string, ChannelHandlers>();
  const placed = new Map<string, Placement>();
  const links = new Map<string, NodeLink>();
  const reconnectListeners: (() => void)[] = [];
  /** slot → "host:port" of its master. */
  let owners: string[] = [];
  let repairing: Promise<void> | null = null;
  let repairAgain = false;
  let degraded = false;
  let closed = false;

  async function readSlots(): Promise<string[]> {
    const slots = (await publisher.call('CLUSTER', 'SLOTS')) as Slots;
    const next: string[] = new Array(16384);
    for (const [from, to, [host, port]] of slots) for (let slot = from; slot <= to; slot++) next[slot] = `${host}:${port}`;
    return next;
  }

  function linkTo(key: string): NodeLink {
    const existing = links.get(key);
    if (existing?.alive) return existing;
    const at = key.lastIndexOf(':');
    let markLost!: () => void;
    const link: NodeLink = {
      key,
      // No reconnection of its own: a lost master's channels are placed again wherever their slots went.
      redis: new Redis({
        ...endpoint.options,
        host: key.slice(0, at),
        port: Number(key.slice(at + 1)),
        connectionName: `${name}:ssub`,
        retryStrategy: () => null,
        autoResubscribe: false,
        maxRetriesPerRequest: null,
        enableReadyCheck: false,
      }),
      channels: new Set(),
      lost: new Promise<void>((resolve) => (markLost = resolve)),
      alive: true,
    };
    const lose = () => {
      if (!link.alive) return;
      link.alive = false;
      markLost();
      if (links.get(key) === link) links.delete(key);
      for (const channel of link.channels) if (placed.get(channel)?.link === link) placed.delete(channel);
      link.channels.clear();
      link.redis.disconnect();
      if (!closed) scheduleRepair();
    };
    // An error on a subscriber connection (refused, reset, or a reply ioredis did not expect, such as
    // the SUNSUBSCRIBE Redis sends when a slot leaves this node) means its subscriptions are in doubt.
    link.redis.on('error', lose);
    link.redis.on('close', lose);
    // ioredis answers an SSUBSCRIBE refused with MOVED (the slot left this node) by this event, and
    // never settles that command: treat it as the loss it is, so the repair places the channel anew.
    link.redis.on('moved', lose);
    link.redis.on('smessage', (channel: string, raw: string) => {
      // Only the link a channel is placed on delivers it: a stale link could repeat what the new one brings.
      if (placed.get(channel)?.link !== link) return;
      const handlers = wanted.get(channel);
      if (!handlers) return;
      dispatch(handlers, decodeEvent(raw));
    });
    links.set(key, link);
    return link;
  }

  /** SSUBSCRIBEs a channel on the master of its slot; a refusal (MOVED, CLUSTERDOWN) sends it to the repair. */
  function place(channel: string): Placement | undefined {
    const owner = owners[keySlot(channel)];
    if (!owner) {
      scheduleRepair();
      return undefined;
    }
    const link = linkTo(owner);
    link.channels.add(channel);
    const acked = link.redis.ssubscribe(channel).then(() => undefined);
    const placement: Placement = { link, acked };
    placed.set(channel, placement);
    acked.catch(() => {
      if (placed.get(channel) !== placement) return;
      placed.delete(channel);
      link.channels.delete(channel);
      scheduleRepair();
    });
    return placement;
  }

  function unplace(channel: string): void {
    const placement = placed.get(channel);
    if (!placement) return;
    placed.delete(channel);
    placement.link.channels.delete(channel);
    if (placement.link.alive) placement.link.redis.sunsubscribe(channel).catch(() => {});
  }

  function scheduleRepair(): void {
    degraded = true;
    if (repairing) {
      repairAgain = true;
      return;
    }
    repairing = repair().finally(() => (repairing = null));
  }

  /**
   * Until every wanted channel is subscribed on the master that serves its
   * slot now and Redis acknowledged it: re-read the slot map, move what sits
   * on the wrong node, place what is missing. Then tell the listeners.
   */
  async function repair(): Promise<void> {
    for (let attempt = 0; !closed; attempt++) {
      repairAgain = false;
      try {
        owners = await readSlots();
        for (const [channel, placement] of [...placed]) {
          if (owners[keySlot(channel)] !== placement.link.key) unplace(channel);
        }
        const waiting: Promise<void>[] = [];
        for (const channel of wanted.keys()) {
          const placement = placed.get(channel) ?? place(channel);
          if (!placement) throw new Error(`no master serves the slot of ${channel}`);
          waiting.push(
            Promise.race([
              placement.acked,
              placement.link.lost.then(() => {
                throw new Error(`lost ${placement.link.key}`);
              }),
            ]),
          );
        }
        await Promise.all(waiting);
        if (repairAgain || [...wanted.keys()].some((channel) => !placed.has(channel))) continue;
        degraded = false;
        for (const listener of reconnectListeners) listener();
        return;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, REPAIR_BACKOFF_MS[Math.min(attempt, REPAIR_BACKOFF_MS.length - 1)]));
      }
    }
  }

  owners = await readSlots();
  const topologyCheck = setInterval(() => {
    if (repairing || closed || placed.size === 0) return;
    readSlots()
      .then((next) => {
        owners = next;
        for (const [channel, placement] of placed) {
          if (owners[keySlot(channel)] !== placement.link.key) return scheduleRepair();
        }
      })
      .catch(() => {});
  }, TOPOLOGY_CHECK_MS);
  topologyCheck.unref();

  return {
    async publish(names: string | readonly string[], event: BusEvent) {
      const raw = encodeEvent(event);
      if (typeof names === 'string') {
        await publisher.spublish(names, raw);
        return;
      }
      // Auto-pipelining groups these by master: one round trip per shard touched.
      await Promise.all(names.map((channel) => publisher.spublish(channel, raw)));
    },

    async subscribe(channel: string, handler: BusHandler): Promise<void> {
      wanted.set(channel, holdHandler(wanted.get(channel), handler));
      // While a repair runs, it places this channel too, and onReconnect follows.
      const placement = placed.get(channel) ?? (degraded ? undefined : place(channel));
      if (placement) await Promise.race([placement.acked, placement.link.lost]).catch(() => {});
    },

    async unsubscribe(channel: string, handler: BusHandler) {
      if (!wanted.has(channel)) return;
      const left = releaseHandler(wanted.get(channel), handler);
      if (left) {
        wanted.set(channel, left);
        return;
      }
      wanted.delete(channel);
      unplace(channel);
    },

    onReconnect(listener) {
      reconnectListeners.push(listener);
    },
    healthy() {
      return publisher.status === 'ready' && !degraded;
    },
    async close() {
      closed = true;
      clearInterval(topologyCheck);
      wanted.clear();
      placed.clear();
      for (const link of links.values()) {
        link.alive = false;
        link.redis.disconnect();
      }
      links.clear();
      publisher.disconnect();
    },
  };
}
