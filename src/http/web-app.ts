import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { pathnameOf, sendText, type RouteHandler } from './routes.js';

/** Where the web app is served; `/` redirects there. */
export const WEB_APP_PATH = '/app/';
/** `vite build` of web/ writes here (the same place from src/http and from the compiled dist/http). */
export const WEB_DIST_DIR = path.resolve(import.meta.dirname, '../../web/dist');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.webmanifest': 'application/manifest+json',
  '.map': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
};

/**
 * Serves the built web app (web/dist) at /app/ and redirects / to it.
 * Static files only: the app is one page, so there is no history fallback.
 * Vite names the files under assets/ by content hash, so those are cached
 * for good; index.html is revalidated every time, so a rebuild shows at once.
 */
export function createWebAppHandler(distDir: string = WEB_DIST_DIR): RouteHandler {
  const root = path.resolve(distDir);
  return (req, res) => {
    const pathname = pathnameOf(req);
    if (pathname === '/') {
      res.writeHead(302, { location: WEB_APP_PATH }).end();
      return true;
    }
    if (pathname !== '/app' && !pathname.startsWith(WEB_APP_PATH)) return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendText(res, 405, 'Method not allowed', { allow: 'GET, HEAD' });
      return true;
    }
    if (pathname === '/app') {
      res.writeHead(301, { location: WEB_APP_PATH }).end();
      return true;
    }
    let relative: string;
    try {
      relative = decodeURIComponent(pathname.slice(WEB_APP_PATH.length)) || 'index.html';
    } catch {
      sendText(res, 400, 'Bad path');
      return true;
    }
    const file = path.resolve(root, relative);
    // Outside web/dist, or a dotfile (the build stamp): not part of the app.
    if (!file.startsWith(root + path.sep) || path.relative(root, file).split(path.sep).some((part) => part.startsWith('.'))) {
      sendText(res, 404, 'Not found');
      return true;
    }
    void readFile(file).then(
      (body) => {
        const immutable = relative.startsWith('assets/');
        res.writeHead(200, {
          'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream',
          'content-length': body.length,
          'cache-control': immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
          'x-content-type-options': 'nosniff',
        });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      (error: NodeJS.ErrnoException) => {
        if (relative === 'index.html' && (error.code === 'ENOENT' || error.code === 'ENOTDIR')) {
          // A checkout where nobody built it yet: say how, instead of a bare 404.
          sendText(res, 404, 'The web app is not built. `npm start` builds it when needed; or run `npm run build:web`.\n');
        } else if (error.code === 'ENOENT' || error.code === 'EISDIR' || error.code === 'ENOTDIR') sendText(res, 404, 'Not found');
        else sendText(res, 500, 'Could not read the file');
      },
    );
    return true;
  };
}
