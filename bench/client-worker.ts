import { SignJWT } from 'jose';
import { io as socketIo, type Socket as SocketIoSocket } from 'socket.io-client';
import WebSocket from 'ws';

/**
 * A load-generating process: opens many WebSockets (spreading source
 * addresses over 127.0.0.0/8 so ephemeral ports do not run out), speaks
 * graphql-transport-ws, Socket.IO, or nothing (the raw baseline; `rawauth`
 * sends one {"token","room"} frame first), and records when each seq
 * arrives. It reads graphql and raw frames with a regular expression, not
 * JSON.parse, so that the client side stays cheap.
 *
 * Every socket also keeps the last seq it saw: a seq not above it is a
 * duplicate or out of order, counted as a violation that `check` reports
 * (exactly-once in-order is part of every measurement, not assumed). The
 * last seq is also the cursor a socket resumes from after `drop` (storm).
 */

type Mode = 'graphql' | 'raw' | 'rawauth' | 'socketio';

interface ConnectCommand {
  cmd: 'connect';
  url: string;
  mode: Mode;
  users: string[];
  secret: string;
  query: string;
  /** Variables per socket (same order as users), or one object for all. */
  variables: Record<string, unknown> | Record<string, unknown>[];
  /** The room (conversation) a socketio/rawauth socket joins. */
  room?: string;
  addressOffset: number;
  /** How many handshakes this process has in flight at once. */
  batch?: number;
  /** Resuming: this variable is set to the socket's last seq on every attempt. */
  cursorVariable?: string;
}

interface Client {
  user: string;
  address: string;
  variables: Record<string, unknown>;
  /** The highest seq this socket has seen since the last reset: its cursor. */
  last: number;
  socket?: WebSocket;
  io?: SocketIoSocket;
}

const clients: Client[] = [];
let spec: ConnectCommand | undefined;
const arrivals = new Map<number, { count: number; last: number }>();
const latencies: number[] = [];
let violations = 0;
let retries = 0;
const errors: string[] = [];
const SEQ = /"seq":(\d+)/;
const SENT_AT = /"body":"t=([\d.]+)/;
const now = () => performance.timeOrigin + performance.now();

function record(client: Client, n: number, body: string | undefined, at: number) {
  if (n <= client.last) {
    violations++;
    if (errors.length < 5) errors.push(`${client.user}: seq ${n} after ${client.last}`);
  } else client.last = n;
  const entry = arrivals.get(n);
  if (entry) {
    entry.count++;
    entry.last = at;
  } else arrivals.set(n, { count: 1, last: at });
  const sent = body === undefined ? null : SENT_AT.exec(body);
  if (sent) latencies.push(at - Number(sent[1]));
}

function onFrame(client: Client, data: WebSocket.RawData) {
  const text = data.toString();
  const at = now();
  const seq = SEQ.exec(text);
  if (!seq) {
    // A graphql-ws error or a completed subscription is a failure of what is measured.
    if (/"type":"(error|complete)"|"errors"/.test(text) && errors.length < 5) errors.push(`${client.user}: ${text.slice(0, 300)}`);
    return;
  }
  record(client, Number(seq[1]), text, at);
}

async function open(client: Client, command: ConnectCommand, key: Uint8Array): Promise<void> {
  const token = command.mode === 'raw' ? '' : await new SignJWT({ name: client.user }).setProtectedHeader({ alg: 'HS256' }).setSubject(client.user).setExpirationTime('2h').sign(key);
  if (command.mode === 'socketio') {
    const socket = socketIo(command.url, { transports: ['websocket'], auth: { token }, reconnection: false, forceNew: true, localAddress: client.address, perMessageDeflate: false } as never);
    client.io = socket;
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', reject);
    });
    socket.on('message', (message: { seq: number; body: string }) => record(client, message.seq, `"body":"${message.body}`, now()));
    const reply = (await socket.emitWithAck('join', command.room)) as { ok?: boolean; error?: string };
    if (!reply.ok) throw new Error(`join: ${reply.error}`);
    return;
  }
  const socket = new WebSocket(command.url, command.mode === 'graphql' ? 'graphql-transport-ws' : undefined, { localAddress: client.address, perMessageDeflate: false });
  client.socket = socket;
  await new Promise<void>((resolve, reject) => socket.once('open', () => resolve()).once('error', reject));
  // Before it is accepted, a failure is the handshake's (retried); after, it is a failure of what is measured.
  let accepted = command.mode === 'raw';
  socket.on('error', (error) => accepted && errors.length < 5 && errors.push(`${client.user}: ${error}`));
  if (command.mode === 'raw') {
    socket.on('message', (data) => onFrame(client, data));
    return;
  }
  await new Promise<void>((acked, reject) => {
    socket.once('close', (code) => reject(new Error(`${client.user}: closed ${code} before it was accepted`)));
    socket.on('message', function first(data) {
      const text = data.toString();
      if (text.includes('"connection_ack"') || text === '{"ok":true}') {
        socket.off('message', first);
        socket.on('message', (frame) => onFrame(client, frame));
        const variables = command.cursorVariable ? { ...client.variables, [command.cursorVariable]: client.last } : client.variables;
        if (command.mode === 'graphql') socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: command.query, variables } }));
        accepted = true;
        acked();
      }
    });
    if (command.mode === 'graphql') socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }));
    else socket.send(JSON.stringify({ token, room: command.room }));
  });
}

/** Opens every client's socket, `batch` handshakes in flight at a time: thousands at once only measure the listen backlog. */
async function openAll(targets: Client[], command: ConnectCommand): Promise<number> {
  const key = new TextEncoder().encode(command.secret);
  let next = 0;
  let ready = 0;
  const lane = async () => {
    while (next < targets.length) {
      const client = targets[next++]!;
      // A refused or reset handshake is retried with backoff, as real clients do (graphql-ws's
      // and Socket.IO's clients both retry); the retries are counted and reported.
      for (let attempt = 0; ; attempt++) {
        try {
          await open(client, command, key);
          break;
        } catch (error) {
          terminate(client);
          if (attempt >= 5) throw new Error(`${client.user}: ${error} (after ${attempt} retries)`);
          retries++;
          await new Promise((resolve) => setTimeout(resolve, Math.random() * 100 * 2 ** attempt));
        }
      }
      ready++;
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(command.batch ?? 200, targets.length) }, lane));
  } catch (error) {
    // How far it got is what `scale` must report when the target count is out of reach.
    throw new Error(`${error} (${ready} of ${targets.length} open in this client process)`);
  }
  return ready;
}

function connect(command: ConnectCommand) {
  spec = command;
  const added = command.users.map((user, i) => {
    const n = i + command.addressOffset;
    const variables = (Array.isArray(command.variables) ? command.variables[i] : command.variables) ?? {};
    return { user, address: `127.0.${1 + (Math.floor(n / 250) % 250)}.${1 + (n % 250)}`, variables, last: 0 } satisfies Client;
  });
  clients.push(...added);
  return openAll(added, command);
}

function terminate(client: Client) {
  client.socket?.terminate();
  client.io?.disconnect();
  client.socket = undefined;
  client.io = undefined;
}

/** Reconnects every client, resuming from its cursor: `cursorVariable` is set to the last seq it saw. */
function resume(cursorVariable: string, batch: number) {
  if (!spec) throw new Error('resume before connect');
  return openAll(clients, { ...spec, batch, cursorVariable });
}

process.on('message', async (message: any) => {
  try {
    if (message.cmd === 'connect') process.send!({ ok: true, connected: await connect(message) });
    else if (message.cmd === 'arrivals') {
      const report: Record<number, { count: number; last: number }> = {};
      for (const seq of message.seqs as number[]) report[seq] = arrivals.get(seq) ?? { count: 0, last: 0 };
      process.send!({ ok: true, report });
    } else if (message.cmd === 'latencies') {
      process.send!({ ok: true, latencies: latencies.splice(0) });
    } else if (message.cmd === 'check') {
      const lasts = clients.map((client) => client.last);
      process.send!({ ok: true, sockets: clients.length, violations, retries, errors, minLast: Math.min(...lasts), maxLast: Math.max(...lasts) });
    } else if (message.cmd === 'reset') {
      arrivals.clear();
      latencies.length = 0;
      for (const client of clients) client.last = 0;
      process.send!({ ok: true });
    } else if (message.cmd === 'drop') {
      for (const client of clients) terminate(client);
      process.send!({ ok: true });
    } else if (message.cmd === 'resume') {
      process.send!({ ok: true, connected: await resume(message.cursorVariable, message.batch) });
    } else if (message.cmd === 'close') {
      for (const client of clients) terminate(client);
      process.send!({ ok: true });
      setTimeout(() => process.exit(0), 50);
    }
  } catch (error) {
    process.send!({ ok: false, error: String(error) });
  }
});
process.send!({ ok: true, ready: true });
