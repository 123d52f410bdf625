import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.js';
import { TestServer, uid } from '../../test/support/server.js';
import { ChatError, createChatApi, createHttpTransport, createTokenSource, type ChatClient, type ConnectionStatus, type TokenRequest } from '../src/index.js';
import { open, range, session, token, waitFor } from './helpers.js';

let db: TestDatabase;
let server: TestServer;
const sessions: ChatClient[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  server = await TestServer.start({ DATABASE_URL: db.url });
});

afterAll(async () => {
  await Promise.all(sessions.map((s) => s.close()));
  await server?.stop();
  await db?.drop();
});

/** A token that expired a minute ago (an absolute `exp`, in seconds). */
const expired = (id: string) => token(id, id, Math.floor(Date.now() / 1000) - 60);

describe('tokens', () => {
  it('refreshes an expiring token through getToken: the socket reconnects and keeps receiving', async () => {
    const [aliceId, bobId] = [uid('alice'), uid('bob')];
    await server.user(aliceId);
    await server.user(bobId);
    const requests: TokenRequest[] = [];
    // The first token lives 3 s (so 2 to 3 s, with whole-second expiry); later ones a day.
    const getToken = async (request: TokenRequest) => {
      requests.push(request);
      return token(bobId, 'Bob', requests.length === 1 ? '3s' : '1d');
    };
    const bob = open(server.url, { getToken }, sessions);
    const statuses: ConnectionStatus[] = [];
    bob.chat.onStatus((status) => statuses.push(status));
    const alice = await session(server, aliceId, sessions);
    const { id: c } = await alice.chat.startDirectConversation(bobId);
    await bob.chat.ready();
    await server.listening(bobId);
    await alice.chat.send(c, 'before expiry');
    await bob.until(c, 1);

    // The server closes the socket with 4403 once the token expires; the
    // session asks for a new token, reconnects and resumes.
    await waitFor(
      () => statuses.includes('connecting') && bob.chat.status === 'live' && requests.some((request) => request.rejected),
      'a refreshed connection',
      15_000,
      () => ({ requests, statuses }),
    );
    expect(requests[0]).toEqual({ rejected: false });
    expect(bob.errors.some((error) => error.code === 'UNAUTHENTICATED')).toBe(true);

    for (let i = 2; i <= 4; i++) await alice.chat.send(c, `after expiry ${i}`);
    await bob.until(c, 4);
    // HTTP works with the new token too.
    expect((await bob.chat.send(c, 'bob is back')).seq).toBe(5);
    await bob.until(c, 5);
    expect(bob.seqs(c)).toEqual(range(1, 5));
  }, 60_000);

  it('retries an HTTP operation once with a fresh token after UNAUTHENTICATED', async () => {
    const id = uid('carol');
    await server.user(id);
    const requests: TokenRequest[] = [];
    const tokens = createTokenSource({
      getToken: (request) => {
        requests.push(request);
        return requests.length === 1 ? expired(id) : token(id, 'Carol');
      },
    });
    const api = createChatApi(createHttpTransport({ url: server.url, tokens }));
    expect(await api.viewer()).toEqual({ id, name: 'Carol' });
    expect(requests).toEqual([{ rejected: false }, { rejected: true }]);
    // The fresh token is kept for later requests.
    expect((await api.viewer()).id).toBe(id);
    expect(requests).toHaveLength(2);
  });

  it('surfaces a refused fixed token as UNAUTHENTICATED, over HTTP and on the socket', async () => {
    const id = uid('dave');
    const dave = open(server.url, { token: await expired(id) }, sessions);
    const error = await dave.chat.viewer().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ChatError);
    expect((error as ChatError).code).toBe('UNAUTHENTICATED');
    await waitFor(() => dave.errors.some((e) => e.code === 'UNAUTHENTICATED' && /token/i.test(e.message)), 'the socket to report the refusal');
    expect(dave.chat.status).toBe('connecting');
  });

  it('keeps trying while getToken fails, and recovers when it works again', async () => {
    const [aliceId, bobId] = [uid('alice'), uid('bob')];
    await server.user(aliceId);
    await server.user(bobId);
    let failures = 0;
    const bob = open(
      server.url,
      {
        getToken: async () => {
          if (failures < 3) {
            failures++;
            throw new Error('identity provider unavailable');
          }
          return token(bobId);
        },
      },
      sessions,
    );
    await bob.chat.ready();
    expect(failures).toBe(3);
    expect(bob.errors.length).toBeGreaterThan(0);
    const alice = await session(server, aliceId, sessions);
    const { id: c } = await alice.chat.startDirectConversation(bobId);
    await alice.chat.send(c, 'it works');
    await bob.until(c, 1);
  });

  it('needs a token or getToken', () => {
    expect(() => open(server.url, {} as never, sessions)).toThrow(/token/);
  });
});
