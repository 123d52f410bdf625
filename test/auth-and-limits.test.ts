import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { TestServer, TestUser, uid } from './support/server.js';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

describe('tokens from an identity provider (JWT_JWKS_URL)', () => {
  let jwks: http.Server;
  let server: TestServer;
  let privateKey: CryptoKey;

  beforeAll(async () => {
    const pair = await generateKeyPair('RS256');
    privateKey = pair.privateKey as CryptoKey;
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'test-key', alg: 'RS256', use: 'sig' };
    // A real HTTP server publishing the key set, as an identity provider does.
    jwks = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })));
    await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
    const { port } = jwks.address() as AddressInfo;
    server = await TestServer.start({
      DATABASE_URL: db.url,
      JWT_SECRET: undefined,
      JWT_JWKS_URL: `http://127.0.0.1:${port}/.well-known/jwks.json`,
      JWT_ISSUER: 'https://id.example',
      JWT_AUDIENCE: 'chat',
    });
  });
  afterAll(async () => {
    await server?.stop();
    await new Promise((resolve) => jwks?.close(resolve));
  });

  const sign = (sub: string, claims: { iss?: string; aud?: string } = {}) =>
    new SignJWT({ name: 'Idp User' })
      .setProtectedHeader({ alg: 'RS256', kid: 'test-key' })
      .setSubject(sub)
      .setIssuer(claims.iss ?? 'https://id.example')
      .setAudience(claims.aud ?? 'chat')
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(privateKey);

  it('accepts a token signed by the provider with the right issuer and audience', async () => {
    const id = uid('idp');
    const user = new TestUser(server, id, await sign(id));
    expect((await user.ok('{ viewer { id name } }')).viewer).toEqual({ id, name: 'Idp User' });
  });

  it('refuses a wrong issuer or audience', async () => {
    for (const claims of [{ iss: 'https://evil.example' }, { aud: 'other-app' }]) {
      const user = new TestUser(server, 'x', await sign(uid('idp'), claims));
      expect(await user.errorCode('{ viewer { id } }')).toBe('UNAUTHENTICATED');
    }
  });
});

describe('send rate limit', () => {
  it('answers RATE_LIMITED past the burst, with a retry hint, and stores nothing for it', async () => {
    const server = await TestServer.start({ DATABASE_URL: db.url, SEND_RATE_PER_SECOND: '1', SEND_BURST: '3' });
    try {
      const alice = await server.user(uid('alice'));
      const c = (await alice.ok('mutation { createGroup(title: "limits", memberIds: []) { id } }')).createGroup.id;
      const send = (m: string) =>
        alice.query('mutation($c: ID!, $m: String!) { sendMessage(conversationId: $c, body: "x", clientMessageId: $m) { seq } }', { c, m });
      for (let i = 0; i < 3; i++) expect((await send(`ok-${i}`)).data?.sendMessage).toBeTruthy();
      const limited = await send('too-many');
      expect(limited.errors?.[0]?.extensions?.code).toBe('RATE_LIMITED');
      expect(limited.errors?.[0]?.extensions?.retryAfterMs).toBeGreaterThan(0);
      expect(await db.query('SELECT seq FROM messages WHERE conversation_id = $1 ORDER BY seq', [c])).toEqual([{ seq: 1 }, { seq: 2 }, { seq: 3 }]);
      await new Promise((resolve) => setTimeout(resolve, 1100));
      expect((await send('later')).data?.sendMessage).toEqual({ seq: 4 });
    } finally {
      await server.stop();
    }
  });
});
