import { randomUUID } from 'node:crypto';
import { socketIoSender, socketSender, type Context, type Send } from './common.js';
import { Clients, startBaseline, startChatServer, startSocketIoPeer, type Measured } from './processes.js';

/**
 * The three servers a scenario runs the same job against, behind one shape:
 *   ours       the chat API (graphql-ws: connection_init with a JWT, then messageAdded(conversationId))
 *   socketio   bench/peer-socketio.ts (handshake auth, room join with ack, store then io.to(room).emit)
 *   raw        bench/baseline-ws.ts (the floor: frames of our size pushed to bare sockets;
 *              with `auth`, each socket first sends a JWT that is verified, and joins a room)
 */
export type Kind = 'ours' | 'socketio' | 'raw';
export const KINDS: Kind[] = ['ours', 'socketio', 'raw'];
export const LABEL: Record<Kind, string> = { ours: 'ours', socketio: 'Socket.IO', raw: 'raw ws' };

export const MESSAGE_ADDED = 'subscription($c: ID!, $a: Int) { messageAdded(conversationId: $c, afterSeq: $a) { id seq body createdAt sender { id name } } }';

export interface Target {
  kind: Kind;
  /** The server process (absent when ours runs elsewhere, e.g. behind nginx). */
  server?: Measured;
  clients: Clients;
  /** One socket per user, authenticated and subscribed to the conversation (joined to its room); `batch` handshakes in flight per client process. */
  connect(users: string[], batch?: number): Promise<void>;
  /** One message to the conversation; resolves with its seq when the server has answered (stored, for ours and Socket.IO). */
  send(body?: string): Promise<number>;
  /** `count` messages at once (raw: one request, so that they stay in order); resolves with their seqs. */
  burst(count: number): Promise<number[]>;
  /**
   * Sends until one message reaches all `members` sockets (graphql-ws does
   * not acknowledge a subscribe, so a delivery is how ours shows it is
   * live); resolves with that message's seq and the time its last copy arrived.
   */
  settle(members: number, timeoutMs?: number): Promise<{ seq: number; at: number }>;
  stop(): Promise<void>;
}

/** Size of the frame a messageAdded subscriber receives, so that the raw baseline sends the same bytes. */
function frameSize(sender: string): number {
  const payload = { data: { messageAdded: { id: randomUUID(), seq: 1000, body: 'fan-out bench message', createdAt: new Date().toISOString(), sender: { id: sender, name: sender } } } };
  return JSON.stringify({ id: '1', type: 'next', payload }).length;
}

export async function startTarget(
  kind: Kind,
  ctx: Context,
  conversation: string,
  sender: string,
  options: { auth?: boolean; workers?: number; httpUrl?: string } = {},
): Promise<Target> {
  const env = { DATABASE_URL: ctx.databaseUrl, JWT_SECRET: ctx.secret };
  const server =
    kind === 'ours' ? (options.httpUrl ? undefined : await startChatServer(env)) : kind === 'socketio' ? await startSocketIoPeer(env) : await startBaseline({ JWT_SECRET: ctx.secret, BASELINE_AUTH: options.auth ? '1' : '' });
  const clients = await Clients.start(options.workers ?? ctx.workers);
  const base = options.httpUrl ?? `http://127.0.0.1:${server!.port}/graphql`;
  let send: Send & { close(): void };
  let connect: Target['connect'];
  let burst: Target['burst'] = (count) => Promise.all(Array.from({ length: count }, () => send(conversation, 'fan-out bench message')));
  if (kind === 'ours') {
    const wsUrl = base.replace(/^http/, 'ws');
    send = await socketSender(wsUrl, ctx.secret, sender);
    connect = async (users, batch) => {
      await clients.connect({ url: wsUrl, mode: 'graphql', users, secret: ctx.secret, query: MESSAGE_ADDED, variables: { c: conversation }, batch });
    };
  } else if (kind === 'socketio') {
    const url = `http://127.0.0.1:${server!.port}`;
    send = await socketIoSender(url, ctx.secret, sender);
    connect = async (users, batch) => {
      await clients.connect({ url, mode: 'socketio', users, secret: ctx.secret, query: '', variables: {}, room: conversation, batch });
    };
  } else {
    const port = server!.port;
    const size = frameSize(sender);
    let seq = 0;
    send = Object.assign(
      async () => {
        const at = ++seq;
        await fetch(`http://127.0.0.1:${port}/broadcast?count=1&size=${size}&from=${at}`);
        return at;
      },
      { close: () => {} },
    );
    burst = async (count) => {
      const from = seq + 1;
      seq += count;
      await fetch(`http://127.0.0.1:${port}/broadcast?count=${count}&size=${size}&from=${from}`);
      return Array.from({ length: count }, (_, i) => from + i);
    };
    connect = async (users, batch) => {
      await clients.connect({ url: `ws://127.0.0.1:${port}/`, mode: options.auth ? 'rawauth' : 'raw', users, secret: ctx.secret, query: '', variables: {}, room: conversation, batch });
    };
  }
  return {
    kind,
    server,
    clients,
    connect,
    send: (body = 'fan-out bench message') => send(conversation, body),
    burst,
    async settle(members, timeoutMs = 120_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const seq = await send(conversation, 'fan-out bench message');
        try {
          // A round is one message's fan-out: give it time to reach every
          // socket (a 10,000-socket broadcast takes 100–300 ms here) before
          // concluding some were not subscribed yet and sending another.
          return { seq, at: await clients.waitFor([seq], members, Math.max(200, members / 4)) };
        } catch (error) {
          if (Date.now() > deadline) throw error;
        }
      }
    },
    async stop() {
      send.close();
      await clients.close();
      await server?.stop();
    },
  };
}
