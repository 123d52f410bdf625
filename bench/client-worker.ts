import { SignJWT } from 'jose';
import WebSocket from 'ws';

/**
 * A load-generating process: opens many WebSockets (spreading source
 * addresses over 127.0.0.0/8 so ephemeral ports do not run out), speaks
 * graphql-transport-ws (or nothing, for the raw baseline), and records when
 * each seq arrives. It reads frames with a regular expression, not
 * JSON.parse, so that the client side stays cheap.
 */

interface ConnectCommand {
  cmd: 'connect';
  url: string;
  mode: 'graphql' | 'raw';
  users: string[];
  secret: string;
  query: string;
  /** Variables per socket (same order as users), or one object for all. */
  variables: Record<string, unknown> | Record<string, unknown>[];
  addressOffset: number;
}

const sockets: WebSocket[] = [];
const arrivals = new Map<number, { count: number; last: number }>();
const latencies: number[] = [];
const SEQ = /"seq":(\d+)/;
const SENT_AT = /"body":"t=([\d.]+)/;
const now = () => performance.timeOrigin + performance.now();

function onFrame(data: WebSocket.RawData) {
  const text = data.toString();
  const at = now();
  const seq = SEQ.exec(text);
  if (!seq) return;
  const n = Number(seq[1]);
  const entry = arrivals.get(n);
  if (entry) {
    entry.count++;
    entry.last = at;
  } else arrivals.set(n, { count: 1, last: at });
  const sent = SENT_AT.exec(text);
  if (sent) latencies.push(at - Number(sent[1]));
}

async function connect(command: ConnectCommand) {
  const key = new TextEncoder().encode(command.secret);
  let ready = 0;
  await new Promise<void>((resolve, reject) => {
    const total = command.users.length;
    const opened: Promise<void>[] = [];
    let index = 0;
    // Open in batches: thousands of simultaneous handshakes only measure the backlog.
    const next = () => {
      const batch = command.users.slice(index, index + 200);
      const start = index;
      index += batch.length;
      if (batch.length === 0) return;
      const done = batch.map(async (user, i) => {
        const n = start + i + command.addressOffset;
        const localAddress = `127.0.${1 + (Math.floor(n / 250) % 250)}.${1 + (n % 250)}`;
        const socket = new WebSocket(command.url, command.mode === 'graphql' ? 'graphql-transport-ws' : undefined, {
          localAddress,
          perMessageDeflate: false,
        });
        sockets.push(socket);
        socket.on('error', reject);
        await new Promise<void>((open) => socket.once('open', () => open()));
        if (command.mode === 'raw') {
          socket.on('message', onFrame);
          ready++;
          return;
        }
        const token = await new SignJWT({ name: user }).setProtectedHeader({ alg: 'HS256' }).setSubject(user).setExpirationTime('2h').sign(key);
        const variables = Array.isArray(command.variables) ? command.variables[start + i] : command.variables;
        await new Promise<void>((acked) => {
          socket.on('message', function first(data) {
            const text = data.toString();
            if (text.includes('"connection_ack"')) {
              socket.off('message', first);
              socket.on('message', onFrame);
              socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: command.query, variables } }));
              acked();
            }
          });
          socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }));
        });
        ready++;
      });
      opened.push(...done);
      void Promise.all(done).then(next, reject);
    };
    next();
    const check = setInterval(() => {
      if (ready >= total) {
        clearInterval(check);
        resolve();
      }
    }, 20);
  });
  return ready;
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
    } else if (message.cmd === 'reset') {
      arrivals.clear();
      latencies.length = 0;
      process.send!({ ok: true });
    } else if (message.cmd === 'close') {
      for (const socket of sockets) socket.terminate();
      process.send!({ ok: true });
      setTimeout(() => process.exit(0), 50);
    }
  } catch (error) {
    process.send!({ ok: false, error: String(error) });
  }
});
