import http from 'node:http';
import { WebSocketServer } from 'ws';

/**
 * The baseline every ratio is measured against: a bare `ws` server that
 * broadcasts frames it is told to, with nothing else in the way. Same
 * process shape as the server under test (one Node process, one port).
 *   POST /broadcast?count=M&size=S   sends M frames of S bytes to every socket
 *   GET  /memory                      process.memoryUsage() after a GC
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
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  process.send?.({ port: (server.address() as { port: number }).port });
});
process.on('SIGTERM', () => process.exit(0));
