import http from 'node:http';
import { jwtVerify } from 'jose';
import pg from 'pg';
import { Server } from 'socket.io';

/**
 * The peer: a Socket.IO 4 rooms server doing the job our API does, written
 * the way Socket.IO's documentation recommends (auth in the handshake via a
 * middleware, a room per conversation, acknowledgements), so that our
 * figures can be read against what a team would otherwise build.
 *
 *   handshake   auth: { token }, a JWT (HS256) verified with jose, as our server does
 *   'join'      (conversationId, ack): a membership check in PostgreSQL, then socket.join(room)
 *   'send'      ({ conversationId, body, clientMessageId }, ack): store with a per-conversation
 *               seq (one statement), then io.to(room).emit('message', ...), then ack({ seq })
 *
 * It stores into tables of its own (sio_*) in the bench database and reads
 * membership from the API's conversation_members, seeded by bench/database.ts.
 * GET /memory answers once it is listening (the bench waits on it).
 */
const key = new TextEncoder().encode(process.env.JWT_SECRET ?? '');
const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 10 });

await pool.query(`
  CREATE TABLE IF NOT EXISTS sio_conversations (id uuid PRIMARY KEY, last_seq integer NOT NULL);
  CREATE TABLE IF NOT EXISTS sio_messages (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    conversation_id uuid NOT NULL,
    seq integer NOT NULL,
    sender_id text NOT NULL,
    body text NOT NULL,
    client_message_id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, seq)
  );`);

// Membership check, seq allocation and insert in one statement (one round trip, atomic).
const SEND = `
  WITH next AS (
    INSERT INTO sio_conversations (id, last_seq)
    SELECT $1, 1 WHERE EXISTS (SELECT 1 FROM conversation_members WHERE conversation_id = $1 AND user_id = $2)
    ON CONFLICT (id) DO UPDATE SET last_seq = sio_conversations.last_seq + 1
    RETURNING last_seq)
  INSERT INTO sio_messages (conversation_id, seq, sender_id, body, client_message_id)
  SELECT $1, last_seq, $2, $3, $4 FROM next
  RETURNING id, seq, created_at`;

const server = http.createServer((req, res) => {
  if (req.url === '/memory') {
    res.end(JSON.stringify(process.memoryUsage()));
    return;
  }
  res.writeHead(404).end();
});
const io = new Server(server, { serveClient: false, perMessageDeflate: false, transports: ['websocket'] });

io.use(async (socket, next) => {
  try {
    const { payload } = await jwtVerify(String(socket.handshake.auth?.token ?? ''), key, { algorithms: ['HS256'] });
    if (!payload.sub) throw new Error('no subject');
    socket.data.userId = payload.sub;
    socket.data.name = typeof payload.name === 'string' ? payload.name : payload.sub;
    next();
  } catch {
    next(new Error('UNAUTHENTICATED'));
  }
});

// Sends to one conversation run one after another: concurrent sends would
// otherwise emit out of seq order (the pool answers in any order).
const queues = new Map<string, Promise<unknown>>();
function serial<T>(conversationId: string, task: () => Promise<T>): Promise<T> {
  const run = (queues.get(conversationId) ?? Promise.resolve()).then(task, task);
  const tail = run.catch(() => {});
  queues.set(conversationId, tail);
  void tail.then(() => {
    if (queues.get(conversationId) === tail) queues.delete(conversationId);
  });
  return run;
}

io.on('connection', (socket) => {
  socket.on('join', async (conversationId: string, ack: (reply: object) => void) => {
    try {
      const member = await pool.query('SELECT 1 FROM conversation_members WHERE conversation_id = $1 AND user_id = $2', [conversationId, socket.data.userId]);
      if (member.rowCount === 0) return ack({ error: 'FORBIDDEN' });
      await socket.join(`c:${conversationId}`);
      ack({ ok: true });
    } catch (error) {
      ack({ error: String(error) });
    }
  });

  socket.on('send', async (input: { conversationId: string; body: string; clientMessageId: string }, ack: (reply: object) => void) => {
    try {
      const seq = await serial(input.conversationId, async () => {
        const result = await pool.query(SEND, [input.conversationId, socket.data.userId, input.body, input.clientMessageId]);
        const row = result.rows[0];
        if (!row) return null;
        io.to(`c:${input.conversationId}`).emit('message', {
          id: row.id,
          seq: row.seq,
          body: input.body,
          createdAt: row.created_at.toISOString(),
          sender: { id: socket.data.userId, name: socket.data.name },
        });
        return row.seq as number;
      });
      ack(seq === null ? { error: 'FORBIDDEN' } : { seq });
    } catch (error) {
      ack({ error: String(error) });
    }
  });
});

server.listen(Number(process.env.PORT ?? 0), '127.0.0.1');
process.on('SIGTERM', () => {
  io.close();
  void pool.end().finally(() => process.exit(0));
});
