import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ChatError, createHttpTransport, createTokenSource, documents } from '../src/index.js';

// The HTTP layer against real sockets: a plain Node HTTP server on a real
// port that answers with a fixed GraphQL result (what matters here is the
// connections, not the API), or never answers at all.

const servers: http.Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

interface Seen {
  socket: Socket;
  connection: string | undefined;
}

async function serve(answer: boolean): Promise<{ url: string; requests: Seen[]; connections: Socket[] }> {
  const requests: Seen[] = [];
  const connections: Socket[] = [];
  const server = http.createServer((req, res) => {
    requests.push({ socket: req.socket, connection: req.headers.connection });
    if (!answer) return; // a frozen instance: the connection is accepted, nothing ever comes back
    req.resume();
    req.on('end', () =>
      // A little later, so that requests sent together overlap and need a socket each.
      setTimeout(() => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ data: { viewer: { __typename: 'User', id: 'alice', name: 'Alice' } } }));
      }, 30),
    );
  });
  server.on('connection', (socket) => connections.push(socket));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`, requests, connections };
}

const tokens = createTokenSource({ token: 'test-token' });

describe('the HTTP transport', () => {
  it('fails a request that gets no answer within requestTimeoutMs with NETWORK_ERROR, and closes its connection', async () => {
    const server = await serve(false);
    const transport = createHttpTransport({ url: server.url, tokens, requestTimeoutMs: 300 });
    const error = await transport.execute(documents.ViewerDocument, {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ChatError);
    expect((error as ChatError).code).toBe('NETWORK_ERROR');
    expect((error as ChatError).message).toBe('No answer within 300 ms');
    // The abandoned connection is not left for the next request to queue behind.
    await expect.poll(() => server.connections[0]!.destroyed).toBe(true);
  });

  it('sends a request marked freshConnection on a new connection although idle kept-alive ones are pooled', async () => {
    const server = await serve(true);
    const transport = createHttpTransport({ url: server.url, tokens });
    // Three at once (different variables: urql merges identical requests in
    // flight): three kept-alive connections, idle afterwards.
    await Promise.all(['a', 'b', 'c'].map((id) => transport.execute(documents.UserDocument, { id })));
    const pooled = new Set(server.connections);
    expect(pooled.size).toBe(3);
    // undici marks a connection idle again just after its response is handed over.
    await new Promise((resolve) => setTimeout(resolve, 20));

    // An ordinary request takes one of them...
    await transport.execute(documents.ViewerDocument, {});
    expect(pooled.has(server.requests.at(-1)!.socket)).toBe(true);
    // ...a fresh one does not, and asks for its connection to be closed after the answer.
    expect((await transport.execute(documents.ViewerDocument, {}, { freshConnection: true })).viewer.id).toBe('alice');
    const fresh = server.requests.at(-1)!;
    expect(pooled.has(fresh.socket)).toBe(false);
    expect(fresh.connection).toBe('close');
    await expect.poll(() => fresh.socket.destroyed).toBe(true);
  });

  it('rejects a negative requestTimeoutMs', () => {
    expect(() => createHttpTransport({ url: 'http://127.0.0.1:1/graphql', tokens, requestTimeoutMs: -1 })).toThrow(/requestTimeoutMs/);
  });
});
