import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuth } from '../src/auth.js';
import { loadConfig, type Config } from '../src/config.js';
import { createDevTokenHandler } from '../src/http/dev-token.js';
import { GRAPHIQL_ASSETS_PATH, renderLocalGraphiQL } from '../src/http/graphiql.js';
import { createBrowserRoutes, type RouteHandler } from '../src/http/index.js';

// The browser routes on a real HTTP server (without the rest of the app:
// they need no database), requested with fetch as a browser would.

const servers: http.Server[] = [];
let dataDir: string;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'chat-browser-routes-'));
});
afterAll(async () => {
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  await rm(dataDir, { recursive: true, force: true });
});

/** Serves `handler`, with a 418 for whatever it declines, so that "not mine" is visible. */
async function serve(handler: RouteHandler): Promise<string> {
  const server = http.createServer((req, res) => {
    if (!handler(req, res)) res.writeHead(418).end('declined');
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function rawStatus(base: string, rawPath: string): Promise<number | undefined> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    http.get({ hostname, port, path: rawPath }, (res) => {
      res.resume();
      resolve(res.statusCode);
    }).on('error', reject);
  });
}

const config = (env: Record<string, string> = {}): Config => loadConfig({ DATA_DIR: dataDir, ...env });
const postToken = (base: string, body: unknown, type = 'application/json') =>
  fetch(`${base}/dev/token`, { method: 'POST', headers: { 'content-type': type }, body: JSON.stringify(body) });

describe('POST /dev/token', () => {
  it('signs a token the server accepts while it runs on the development secret', async () => {
    const dev = config();
    const base = await serve(await createBrowserRoutes(dev));
    const response = await postToken(base, { userId: 'alice', name: ' Alice ' });
    expect(response.status).toBe(200);
    const { token } = (await response.json()) as { token: string };
    const viewer = await (await createAuth(dev)).verify(token);
    expect(viewer).toMatchObject({ id: 'alice', name: 'Alice' });
    expect(viewer.expiresAtSeconds! * 1000).toBeGreaterThan(Date.now());
  });

  it('refuses what is not a valid sign-in', async () => {
    const base = await serve(await createBrowserRoutes(config()));
    expect((await fetch(`${base}/dev/token`)).status).toBe(405);
    expect((await postToken(base, { userId: 'alice' }, 'text/plain')).status).toBe(415);
    expect((await postToken(base, { userId: 'no spaces allowed' })).status).toBe(400);
    expect((await postToken(base, { userId: 'alice', name: 'x'.repeat(101) })).status).toBe(400);
    expect((await postToken(base, { userId: 'a', name: 'x'.repeat(5000) })).status).toBe(413);
  });

  it('does not exist when JWT_SECRET or JWT_JWKS_URL is set, even if handed a development secret', async () => {
    for (const env of <Record<string, string>[]>[{ JWT_SECRET: 'a-production-secret-of-at-least-32-chars' }, { JWT_JWKS_URL: 'http://127.0.0.1:9/jwks.json' }]) {
      const production = config(env);
      for (const handler of [await createBrowserRoutes(production), createDevTokenHandler(production, 'a-leaked-development-secret')]) {
        const base = await serve(handler);
        const response = await postToken(base, { userId: 'mallory' });
        expect(response.status).toBe(404);
        expect(await response.text()).not.toContain('token"');
      }
    }
  });
});

describe('the web app', () => {
  it('is served from web/dist at /app/, with / redirecting there, and nothing outside it', async () => {
    const dist = path.join(dataDir, 'dist');
    await mkdir(path.join(dist, 'assets'), { recursive: true });
    await writeFile(path.join(dist, 'index.html'), '<!doctype html><title>chat</title>');
    await writeFile(path.join(dist, 'assets', 'index-abc123.js'), 'console.log(1)');
    await writeFile(path.join(dataDir, 'secret.txt'), 'not for the web');
    const base = await serve(await createBrowserRoutes(config(), { webDistDir: dist }));

    const root = await fetch(`${base}/`, { redirect: 'manual' });
    expect([root.status, root.headers.get('location')]).toEqual([302, '/app/']);
    const page = await fetch(`${base}/app/`);
    expect([page.status, page.headers.get('content-type'), page.headers.get('cache-control')]).toEqual([200, 'text/html; charset=utf-8', 'no-cache']);
    expect(await page.text()).toContain('<title>chat</title>');
    const script = await fetch(`${base}/app/assets/index-abc123.js`);
    expect([script.status, script.headers.get('content-type'), script.headers.get('cache-control')]).toEqual([
      200,
      'text/javascript; charset=utf-8',
      'public, max-age=31536000, immutable',
    ]);
    expect((await fetch(`${base}/app/assets/missing.js`)).status).toBe(404);
    // Sent as they are (fetch would normalize the dots away before sending).
    for (const raw of ['/app/..%2Fsecret.txt', '/app/%2e%2e/secret.txt', '/app/../secret.txt', '/app/assets/../../secret.txt']) {
      expect([raw, await rawStatus(base, raw)]).toEqual([raw, 404]);
    }
    // Paths that are not the app's are left to the rest of the server.
    expect((await fetch(`${base}/graphql`)).status).toBe(418);
    expect((await fetch(`${base}/application`)).status).toBe(418);
  });

  it('explains how to build it when web/dist is missing', async () => {
    const base = await serve(await createBrowserRoutes(config(), { webDistDir: path.join(dataDir, 'nowhere') }));
    const page = await fetch(`${base}/app/`);
    expect(page.status).toBe(404);
    expect(await page.text()).toContain('npm run build:web');
  });
});

describe('GraphiQL from local files', () => {
  it('renders a page that names no other host and carries the default query', () => {
    const html = renderLocalGraphiQL({ title: 'Chat API', defaultQuery: '# hi </script>\n{ viewer { id } }' });
    expect(html).not.toMatch(/https?:\/\//);
    expect(html).toContain(`src="${GRAPHIQL_ASSETS_PATH}graphiql.js"`);
    expect(html).toContain('"defaultQuery":"# hi \\u003c/script>\\n{ viewer { id } }"');
  });

  it('serves the bundle, gzipped when asked, and its workers', async () => {
    const base = await serve(await createBrowserRoutes(config()));
    const plain = await fetch(`${base}${GRAPHIQL_ASSETS_PATH}graphiql.css`, { headers: { 'accept-encoding': 'identity' } });
    expect(plain.status).toBe(200);
    const css = await plain.text();
    expect(css).toContain('.graphiql-container');

    // fetch would unzip by itself: ask with node:http to see the bytes.
    const zipped = await new Promise<{ encoding?: string; body: Buffer }>((resolve, reject) => {
      http.get(`${base}${GRAPHIQL_ASSETS_PATH}graphiql.css`, { headers: { 'accept-encoding': 'gzip' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve({ encoding: res.headers['content-encoding'], body: Buffer.concat(chunks) }));
      }).on('error', reject);
    });
    expect(zipped.encoding).toBe('gzip');
    expect(gunzipSync(zipped.body).toString()).toBe(css);

    for (const name of ['graphiql.js', 'editor.worker.js', 'json.worker.js', 'graphql.worker.js', 'favicon.ico']) {
      expect((await fetch(`${base}${GRAPHIQL_ASSETS_PATH}${name}`, { method: 'HEAD' })).status).toBe(200);
    }
    expect((await fetch(`${base}${GRAPHIQL_ASSETS_PATH}constructor`)).status).toBe(404);
  });
});
