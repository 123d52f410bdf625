import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createChatClient, type ChatClient } from '../client/src/index.js';
import { documentIds } from '../client/src/generated/document-ids.js';
import { SDK_DOCUMENTS } from '../src/generated/trusted-documents.js';
import { EARLIER_SDK_DOCUMENTS } from '../src/security/earlier-sdk-documents.js';
import { TrustedDocuments } from '../src/security/trusted-documents.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { ALL_TRANSPORTS, codeOf, runVia } from './support/raw.js';
import { signToken } from '../src/auth.js';
import { TEST_JWT_SECRET, TestServer, uid, type TestUser } from './support/server.js';

// Issue 10: trusted documents (persisted operations), opt-in for production
// clients, usable by the SDK (README, "Trusted documents").

let db: TestDatabase;
let dir: string;
beforeAll(async () => {
  db = await createTestDatabase();
  dir = await mkdtemp(path.join(tmpdir(), 'chat-trusted-'));
});
afterAll(async () => {
  await db?.drop();
  await rm(dir, { recursive: true, force: true });
});

const VIEWER = documentIds.Viewer!;

describe('a server that accepts any document (the default)', () => {
  let server: TestServer;
  let alice: TestUser;
  beforeAll(async () => {
    server = await TestServer.start({ DATABASE_URL: db.url });
    alice = await server.user(uid('alice'));
  });
  afterAll(() => server?.stop());

  it.each(ALL_TRANSPORTS)("runs an SDK operation named by its document id over %s", async (transport) => {
    // graphql-transport-ws requires a query string: an empty one goes with the id.
    const result = await runVia(transport, transport === 'ws' ? '' : undefined, undefined, { url: server.url, token: alice.token, extra: { documentId: VIEWER } });
    expect(result.errors).toBeUndefined();
    expect(result.data?.viewer.id).toBe(alice.id);
  });

  it.each(ALL_TRANSPORTS)('answers an unknown document id with PERSISTED_DOCUMENT_NOT_FOUND over %s', async (transport) => {
    const result = await runVia(transport, transport === 'ws' ? '' : undefined, undefined, { url: server.url, token: alice.token, extra: { documentId: `sha256:${'0'.repeat(64)}` } });
    expect(codeOf(result)).toBe('PERSISTED_DOCUMENT_NOT_FOUND');
  });

  it("accepts Apollo's persistedQuery extension as a document id", async () => {
    const result = await runVia('http', undefined, undefined, {
      url: server.url,
      token: alice.token,
      extra: { extensions: { persistedQuery: { version: 1, sha256Hash: VIEWER.slice('sha256:'.length) } } },
    });
    expect(result.data?.viewer.id).toBe(alice.id);
  });

  it('registers the SDK operations under the sha256 of their text', () => {
    for (const [id, text] of Object.entries(SDK_DOCUMENTS)) expect(TrustedDocuments.idOf(text)).toBe(id);
    expect(Object.values(documentIds).sort()).toEqual(Object.keys(SDK_DOCUMENTS).sort());
  });
});

describe('a server that runs trusted documents only (TRUSTED_DOCUMENTS_ONLY)', () => {
  let server: TestServer;
  let token: string;
  const extra = 'query Mine { viewer { name } }';
  beforeAll(async () => {
    const manifest = path.join(dir, 'partner.json');
    await writeFile(manifest, JSON.stringify({ [TrustedDocuments.idOf(extra)]: extra }));
    server = await TestServer.start({ DATABASE_URL: db.url, TRUSTED_DOCUMENTS_ONLY: 'true', TRUSTED_DOCUMENTS: manifest });
    token = await signToken(TEST_JWT_SECRET, uid('alice'));
  });
  afterAll(() => server?.stop());

  it.each(ALL_TRANSPORTS)('refuses any other text with PERSISTED_DOCUMENT_REQUIRED over %s', async (transport) => {
    const result = await runVia(transport, '{ viewer { id name } }', undefined, { url: server.url, token });
    expect(codeOf(result)).toBe('PERSISTED_DOCUMENT_REQUIRED');
  });

  it("runs a partner's document from a TRUSTED_DOCUMENTS manifest, by id or by its exact text", async () => {
    const t = await signToken(TEST_JWT_SECRET, uid('partner'), { name: 'Partner' });
    expect((await runVia('http', undefined, undefined, { url: server.url, token: t, extra: { documentId: TrustedDocuments.idOf(extra) } })).data).toEqual({ viewer: { name: 'Partner' } });
    expect((await runVia('http', extra, undefined, { url: server.url, token: t })).data).toEqual({ viewer: { name: 'Partner' } });
  });

  it("keeps running an earlier SDK release's documents, so that its apps' edits survive a server upgrade", async () => {
    const earlier = Object.entries(EARLIER_SDK_DOCUMENTS);
    for (const [id, text] of earlier) expect(TrustedDocuments.idOf(text), id).toBe(id);
    // None of them is the current SDK's (those are in SDK_DOCUMENTS), and they do not collide.
    expect(earlier.filter(([id]) => id in SDK_DOCUMENTS)).toEqual([]);
    const [editId] = earlier.find(([, text]) => text.startsWith('mutation EditMessage('))!;
    const t = await signToken(TEST_JWT_SECRET, uid('old-sdk'), { name: 'Old' });
    const byId = (documentId: string, variables: Record<string, unknown>) => runVia('http', undefined, variables, { url: server.url, token: t, extra: { documentId } });
    const group = await byId(documentIds.CreateGroup!, { title: 'old sdk', memberIds: [] });
    const c = (group.data as { createGroup: { id: string } }).createGroup.id;
    await byId(documentIds.SendMessage!, { conversationId: c, body: 'as sent', clientMessageId: uid('m') });
    const edited = await byId(editId, { conversationId: c, seq: 1, body: 'edited by an earlier SDK' });
    expect(edited.errors).toBeUndefined();
    expect((edited.data as { editMessage: { body: string } }).editMessage.body).toBe('edited by an earlier SDK');
  });

  it('serves the SDK with trustedDocuments: true, over HTTP and the WebSocket', async () => {
    const sdkToken = await signToken(TEST_JWT_SECRET, uid('sdk'), { name: 'Sdk' });
    const sessions: ChatClient[] = [];
    const chat = createChatClient({ url: server.url, token: sdkToken, webSocketImpl: WebSocket, trustedDocuments: true, retry: { initialDelayMs: 50, maxDelayMs: 500 } });
    sessions.push(chat);
    try {
      const me = await chat.viewer();
      const group = await chat.createGroup('trusted', []);
      const received: string[] = [];
      chat.onMessage((message) => received.push(message.body));
      await chat.send(group.id, 'over a trusted document');
      const deadline = Date.now() + 10_000;
      while (received.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(me.name).toBe('Sdk');
      expect(received).toEqual(['over a trusted document']);
    } finally {
      await Promise.all(sessions.map((s) => s.close()));
    }
  });

  it('refuses to start on a manifest whose id is not the hash of its text', async () => {
    const forged = path.join(dir, 'forged.json');
    await writeFile(forged, JSON.stringify({ [TrustedDocuments.idOf('{ viewer { id } }')]: 'mutation { leaveConversation(conversationId: "x") }' }));
    await expect(TestServer.start({ DATABASE_URL: db.url, TRUSTED_DOCUMENTS: forged })).rejects.toThrow(/not the sha256/);
  });
});
