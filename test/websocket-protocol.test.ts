import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { settle, TestServer, uid, type TestUser } from './support/server.js';

// The graphql-transport-ws protocol as the server speaks it, frame by frame
// (https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md), with a
// bare WebSocket so that nothing smooths over what the server does.

let db: TestDatabase;
let server: TestServer;
let alice: TestUser;

beforeAll(async () => {
  db = await createTestDatabase();
  server = await TestServer.start({ DATABASE_URL: db.url });
  alice = await server.user(uid('alice'), 'Alice');
});
afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

/** A raw protocol peer: sends frames, records what comes back and how the socket closes. */
async function peer(...protocols: (string | undefined)[]) {
  const protocol = protocols.length === 0 ? 'graphql-transport-ws' : protocols[0];
  const socket = new WebSocket(server.wsUrl, protocol);
  const frames: any[] = [];
  let closed: { code: number; reason: string } | undefined;
  socket.on('message', (data) => frames.push(JSON.parse(String(data))));
  socket.on('close', (code, reason) => (closed = { code, reason: String(reason) }));
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  const until = async (predicate: () => boolean, what: string) => {
    const deadline = Date.now() + 5000;
    while (!predicate()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify({ frames, closed })}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };
  return {
    send: (message: object | string) => socket.send(typeof message === 'string' ? message : JSON.stringify(message)),
    frames,
    closedWith: async () => {
      await until(() => closed !== undefined, 'the close');
      return closed!;
    },
    until,
    async init() {
      socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${alice.token}` } }));
      await until(() => frames.some((f) => f.type === 'connection_ack'), 'connection_ack');
    },
    close: () => socket.close(),
  };
}

describe('the graphql-transport-ws protocol', () => {
  it('closes with 4406 without the graphql-transport-ws subprotocol', async () => {
    expect((await (await peer(undefined)).closedWith()).code).toBe(4406);
  });

  it('closes with 4400 on a frame that is not a protocol message', async () => {
    const p = await peer();
    p.send('{"type":"nonsense"}');
    expect(await p.closedWith()).toEqual({ code: 4400, reason: 'Invalid message received' });
  });

  it('closes with 4401 on a subscribe before the connection is acknowledged', async () => {
    const p = await peer();
    p.send({ id: '1', type: 'subscribe', payload: { query: '{ viewer { id } }' } });
    expect((await p.closedWith()).code).toBe(4401);
  });

  it('closes with 4429 on a second connection_init', async () => {
    const p = await peer();
    await p.init();
    p.send({ type: 'connection_init', payload: { authorization: `Bearer ${alice.token}` } });
    expect((await p.closedWith()).code).toBe(4429);
  });

  it('answers pings with pongs, echoing the payload', async () => {
    const p = await peer();
    await p.init();
    p.send({ type: 'ping', payload: { n: 1 } });
    await p.until(() => p.frames.some((f) => f.type === 'pong'), 'pong');
    expect(p.frames.find((f) => f.type === 'pong')).toEqual({ type: 'pong', payload: { n: 1 } });
    p.close();
  });

  it('runs queries and mutations over the socket: next, then complete', async () => {
    const p = await peer();
    await p.init();
    p.send({ id: 'q1', type: 'subscribe', payload: { query: '{ viewer { id name } }' } });
    p.send({ id: 'm1', type: 'subscribe', payload: { query: 'mutation { createGroup(title: "over ws", memberIds: []) { title } }' } });
    await p.until(() => p.frames.filter((f) => f.type === 'complete').length === 2, 'two completes');
    expect(p.frames.filter((f) => f.id === 'q1')).toEqual([
      { id: 'q1', type: 'next', payload: { data: { viewer: { id: alice.id, name: 'Alice' } } } },
      { id: 'q1', type: 'complete' },
    ]);
    expect(p.frames.find((f) => f.id === 'm1' && f.type === 'next').payload).toEqual({ data: { createGroup: { title: 'over ws' } } });
    p.close();
  });

  it('answers an invalid document with an error message for that id, and keeps the connection', async () => {
    const p = await peer();
    await p.init();
    p.send({ id: 'bad', type: 'subscribe', payload: { query: '{ nope }' } });
    await p.until(() => p.frames.some((f) => f.id === 'bad'), 'the error');
    expect(p.frames.find((f) => f.id === 'bad')).toMatchObject({ id: 'bad', type: 'error', payload: [{ message: expect.stringContaining('nope') }] });
    p.send({ id: 'ok', type: 'subscribe', payload: { query: '{ viewer { id } }' } });
    await p.until(() => p.frames.some((f) => f.id === 'ok' && f.type === 'complete'), 'the next operation');
    p.close();
  });

  it('closes with 4409 when an id is reused while its subscription runs', async () => {
    const p = await peer();
    await p.init();
    const c = (await alice.ok('mutation { createGroup(title: "dup", memberIds: []) { id } }')).createGroup.id;
    const subscribe = { id: 'same', type: 'subscribe', payload: { query: 'subscription($c: ID!) { messageAdded(conversationId: $c) { seq } }', variables: { c } } };
    p.send(subscribe);
    p.send(subscribe);
    expect((await p.closedWith()).code).toBe(4409);
  });

  it('writes each subscription id as the client sent it, escaping included', async () => {
    // Frames are assembled around the shared payload (src/realtime/transport/graphql-ws.ts, SocketSink):
    // an id that needs JSON escaping must come back equal, and a plain one too.
    const p = await peer();
    await p.init();
    const c = (await alice.ok('mutation { createGroup(title: "ids", memberIds: []) { id } }')).createGroup.id;
    const ids = ['plain-1', 'quo"te\\back\nline', 'ünï€😀'];
    for (const id of ids) p.send({ id, type: 'subscribe', payload: { query: 'subscription($c: ID!) { messageAdded(conversationId: $c) { seq } }', variables: { c } } });
    await settle(300);
    await alice.ok('mutation($c: ID!) { sendMessage(conversationId: $c, body: "x", clientMessageId: "ids-1") { seq } }', { c });
    await p.until(() => p.frames.filter((f) => f.type === 'next').length === ids.length, 'a message on every id');
    const next = p.frames.filter((f) => f.type === 'next');
    expect(next.map((f) => f.id).sort()).toEqual([...ids].sort());
    for (const frame of next) expect(frame.payload).toEqual({ data: { messageAdded: { seq: 1 } } });
    p.close();
  });

  it('stops a subscription when the client completes it', async () => {
    const p = await peer();
    await p.init();
    const c = (await alice.ok('mutation { createGroup(title: "stop", memberIds: []) { id } }')).createGroup.id;
    p.send({ id: 's', type: 'subscribe', payload: { query: 'subscription($c: ID!) { messageAdded(conversationId: $c, afterSeq: 0) { seq } }', variables: { c } } });
    const send = (m: string) => alice.ok('mutation($c: ID!, $m: String!) { sendMessage(conversationId: $c, body: "x", clientMessageId: $m) { seq } }', { c, m });
    await send('a');
    await p.until(() => p.frames.some((f) => f.id === 's' && f.type === 'next'), 'the first message');
    p.send({ id: 's', type: 'complete' });
    await settle(100);
    await send('b');
    await settle(300);
    expect(p.frames.filter((f) => f.id === 's').map((f) => f.payload?.data?.messageAdded?.seq ?? f.type)).toEqual([1]);
    p.close();
  });

  it("answers a send before the send's own fan-out: the sender never waits for delivery", async () => {
    // One socket both subscribed to the conversation and sending into it:
    // the mutation's answer must be written before the fan-out of the same
    // message starts (docs/architecture.md, "A message, from sendMessage to a
    // subscriber's socket", step 2), so it arrives first.
    const p = await peer();
    await p.init();
    const c = (await alice.ok('mutation { createGroup(title: "answer first", memberIds: []) { id } }')).createGroup.id;
    p.send({ id: 's', type: 'subscribe', payload: { query: 'subscription($c: ID!) { messageAdded(conversationId: $c, afterSeq: 0) { seq } }', variables: { c } } });
    const send = (id: string) =>
      p.send({ id, type: 'subscribe', payload: { query: 'mutation($c: ID!, $m: String!) { sendMessage(conversationId: $c, body: "x", clientMessageId: $m) { seq } }', variables: { c, m: id } } });
    send('warm');
    await p.until(() => p.frames.some((f) => f.id === 's' && f.payload?.data?.messageAdded?.seq === 1), 'the first message live');
    for (const id of ['m2', 'm3', 'm4']) {
      send(id);
      const seq = Number(id.slice(1));
      await p.until(() => p.frames.some((f) => f.id === 's' && f.payload?.data?.messageAdded?.seq === seq), `message ${seq} on the subscription`);
      const answer = p.frames.findIndex((f) => f.id === id && f.type === 'next');
      const delivery = p.frames.findIndex((f) => f.id === 's' && f.payload?.data?.messageAdded?.seq === seq);
      expect(p.frames[answer].payload).toEqual({ data: { sendMessage: { seq } } });
      expect(answer, `answer of ${id} before its delivery`).toBeLessThan(delivery);
    }
    p.close();
  });

  it('lets a client reuse an id once its operation completed, however the starts and completes interleave', async () => {
    const p = await peer();
    await p.init();
    const c = (await alice.ok('mutation { createGroup(title: "reuse", memberIds: []) { id } }')).createGroup.id;
    const subscribe = (id: string) => ({ id, type: 'subscribe', payload: { query: 'subscription($c: ID!) { messageAdded(conversationId: $c) { seq } }', variables: { c } } });
    // Subscribe A; in the same tick subscribe B and complete A; later complete B; then subscribe B again.
    p.send(subscribe('A'));
    p.send(subscribe('B'));
    p.send({ id: 'A', type: 'complete' });
    await settle(300);
    p.send({ id: 'B', type: 'complete' });
    await settle(100);
    p.send(subscribe('B'));
    await settle(100);
    await alice.ok('mutation($c: ID!) { sendMessage(conversationId: $c, body: "x", clientMessageId: "reuse-1") { seq } }', { c });
    await p.until(() => p.frames.some((f) => f.id === 'B' && f.type === 'next'), 'a message on the reused id');
    expect(p.frames.filter((f) => f.type === 'next').map((f) => f.id)).toEqual(['B']);
    p.close();
  });
});
