import { createRequire } from 'node:module';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { css, editorWorkerService, favicon, graphqlWorker, js, jsonWorker } from '@graphql-yoga/render-graphiql/graphiql';
import type { GraphiQLOptions } from 'graphql-yoga';
import { pathnameOf, sendText, type RouteHandler } from './routes.js';

/**
 * GraphiQL from this server alone. Yoga's built-in page loads GraphiQL from
 * a public CDN and stays blank offline; `@graphql-yoga/render-graphiql` (by
 * Yoga's authors, the same GraphiQL build) ships it inside the package, but
 * inlines all 9 MB into every page. Here the page is small and the bundle is
 * served as separate files under a versioned path, cached for good and
 * gzipped once.
 *
 * Wiring: `renderGraphiQL: renderLocalGraphiQL` in createYoga's options (Yoga
 * still decides when to show GraphiQL and passes the `graphiql` options,
 * defaultQuery included), and the handler from createGraphiQLAssetsHandler()
 * in front of Yoga.
 */

const version: string = createRequire(import.meta.url)('@graphql-yoga/render-graphiql/package.json').version;
export const GRAPHIQL_ASSETS_PATH = `/graphiql/${version}/`;

const faviconMatch = /^data:([^;,]+);base64,(.*)$/s.exec(favicon);
const ASSETS: Record<string, { type: string; body: Buffer }> = {
  'graphiql.js': { type: 'text/javascript; charset=utf-8', body: Buffer.from(js) },
  'graphiql.css': { type: 'text/css; charset=utf-8', body: Buffer.from(css) },
  'editor.worker.js': { type: 'text/javascript; charset=utf-8', body: Buffer.from(editorWorkerService) },
  'json.worker.js': { type: 'text/javascript; charset=utf-8', body: Buffer.from(jsonWorker) },
  'graphql.worker.js': { type: 'text/javascript; charset=utf-8', body: Buffer.from(graphqlWorker) },
  ...(faviconMatch && { 'favicon.ico': { type: faviconMatch[1]!, body: Buffer.from(faviconMatch[2]!, 'base64') } }),
};

/** `<`-escaped JSON, safe inside a <script> element whatever the strings contain. */
const scriptJson = (value: unknown) => JSON.stringify(value).replace(/</g, '\\u003c');
const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The GraphiQL page (Yoga's `renderGraphiQL` option): what Yoga's own page does, with local files. */
export function renderLocalGraphiQL(options: GraphiQLOptions = {}): string {
  const base = GRAPHIQL_ASSETS_PATH;
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>${escapeHtml(options.title ?? 'GraphiQL')}</title>
    <link rel="icon" href="${options.favicon ? escapeHtml(options.favicon) : `${base}favicon.ico`}" />
    <link rel="stylesheet" href="${base}graphiql.css" />
  </head>
  <body id="body" class="no-focus-outline">
    <noscript>You need to enable JavaScript to run GraphiQL.</noscript>
    <div id="root"></div>
    <script>
      // Monaco's editors run in web workers, from this server too.
      self.MonacoEnvironment = {
        globalAPI: false,
        getWorkerUrl: (_moduleId, label) =>
          ({ json: '${base}json.worker.js', graphql: '${base}graphql.worker.js' })[label] ?? '${base}editor.worker.js',
      };
    </script>
    <script src="${base}graphiql.js"></script>
    <script>
      YogaGraphiQL.renderYogaGraphiQL(document.getElementById('root'), ${scriptJson(options)});
    </script>
  </body>
</html>
`;
}

const gzipAsync = promisify(gzip);
const gzipped = new Map<string, Promise<Buffer>>();

/** Serves GraphiQL's files under GRAPHIQL_ASSETS_PATH; returns false for every other path. */
export function createGraphiQLAssetsHandler(): RouteHandler {
  return (req, res) => {
    const pathname = pathnameOf(req);
    if (!pathname.startsWith(GRAPHIQL_ASSETS_PATH)) return false;
    const name = pathname.slice(GRAPHIQL_ASSETS_PATH.length);
    const asset = Object.hasOwn(ASSETS, name) ? ASSETS[name] : undefined;
    if (!asset || (req.method !== 'GET' && req.method !== 'HEAD')) {
      sendText(res, 404, 'Not found');
      return true;
    }
    const headers = {
      'content-type': asset.type,
      // The path carries the package version: a new GraphiQL gets a new URL.
      'cache-control': 'public, max-age=31536000, immutable',
      'x-content-type-options': 'nosniff',
      vary: 'accept-encoding',
    };
    const wantsGzip = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
    if (!wantsGzip || asset.body.length < 1024) {
      res.writeHead(200, { ...headers, 'content-length': asset.body.length }).end(req.method === 'HEAD' ? undefined : asset.body);
      return true;
    }
    // Compressed once, off the event loop (zlib's thread pool), then kept.
    let compressed = gzipped.get(name);
    if (!compressed) gzipped.set(name, (compressed = gzipAsync(asset.body)));
    compressed.then(
      (body) => res.writeHead(200, { ...headers, 'content-encoding': 'gzip', 'content-length': body.length }).end(req.method === 'HEAD' ? undefined : body),
      () => res.writeHead(200, { ...headers, 'content-length': asset.body.length }).end(asset.body),
    );
    return true;
  };
}
