import http from 'node:http';
import { jwtVerify } from 'jose';
import { WebSocketServer } from 'ws';

/**
 * The baseline every ratio is measured against: a bare `ws` server that
 * broadcasts frames it is told to, with nothing else in the way. Same
 * process shape as the server under test (one Node process, one port).
 *   POST /broadcast?count=M&size=S   sends M frames of S bytes to every socket
 *   GET  /memory                      process.memoryUsage() after a GC
 * With BASELINE_AUTH=1, a client may first send {"token","room"} (the `connect` scenario's floor for
 * authenticate + join): the JWT is verified with jose as the API does, the
 * socket is put in that room's set, and {"ok":true} answers.
 */
const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (url.pathname === '/broadcast') {
    const count = Number(url.searchParams.get('count') ?? 1);
    const size = Number(url.searchParams.get('size') ?? 200);
    const from = Number(url.searchParams.get('from') ?? 1);
    for (let i = 0; i < count; i++) {
      const head = `{"id":"1","type":"next","payload":{"data":{"messageAdded":{"seq":${from + i},"body":"`;
      const frame = head + 'x'.repeat(Math.max(0, size - head.length - 6)) + '"}}}}';
      for (const client of wss.clients) client.send(frame);
    }
    res.end('ok');
    return;
  }
  if (url.pathname === '/memory') {
    globalThis.gc?.();
    res.end(JSON.stringify(process.memoryUsage()));
    return;
  }
  res.writeHead(404).end();
});
const wss = new WebSocketServer({ server, perMessageDeflate: false });
const key = new TextEncoder().encode(process.env.JWT_SECRET ?? '');
const rooms = new Map<string, Set<unknown>>();
// Only when asked for (BASELINE_AUTH=1): a listener per socket would weigh on the idle-memory floor.
if (process.env.BASELINE_AUTH) wss.on('connection', (socket) => {
  socket.once('message', async (data) => {
    try {
      const { token, room } = JSON.parse(String(data));
      await jwtVerify(token, key, { algorithms: ['HS256'] });
      const members = rooms.get(room) ?? new Set();
      rooms.set(room, members.add(socket));
      socket.once('close', () => members.delete(socket));
      socket.send('{"ok":true}');
    } catch {
      socket.close(4401);
    }
  });
});
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  process.send?.({ port: (server.address() as { port: number }).port });
});
process.on('SIGTERM', () => process.exit(0));
