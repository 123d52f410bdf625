import type { IncomingMessage } from 'node:http';
import { isValidUserId, signToken } from '../auth.js';
import type { Config } from '../config.js';
import { pathnameOf, sendJson, type RouteHandler } from './routes.js';

export const DEV_TOKEN_PATH = '/dev/token';
/** Long enough for a day of development; the web app asks for a new one when the server refuses it. */
const DEV_TOKEN_LIFETIME = '12h';
const MAX_BODY_BYTES = 4096;

/** True when the server verifies tokens with the embedded default's development secret. */
export function usesDevelopmentSecret(config: Config): boolean {
  return !config.jwtSecret && !config.jwtJwksUrl;
}

/**
 * `POST /dev/token` with `{ "userId": "alice", "name": "Alice" }` answers
 * `{ "token": "…" }`: development sign-in for the web app and GraphiQL, the
 * same token `npm run token` prints.
 *
 * Anyone who can reach the server can sign in as anyone with it, which is
 * the point on a laptop and unacceptable anywhere else: it exists only
 * while the server runs on the embedded default's development secret
 * (JWT_SECRET and JWT_JWKS_URL unset). Otherwise the path answers 404, as
 * if it did not exist, whatever `developmentSecret` says.
 *
 * Only `application/json` bodies are accepted: a cross-site page cannot send
 * one without a CORS preflight, which this endpoint never approves.
 */
export function createDevTokenHandler(config: Config, developmentSecret: string | undefined): RouteHandler {
  const secret = usesDevelopmentSecret(config) ? developmentSecret : undefined;
  return (req, res) => {
    if (pathnameOf(req) !== DEV_TOKEN_PATH) return false;
    if (!secret) {
      sendJson(res, 404, { error: 'Not found' });
      return true;
    }
    if (req.method !== 'POST') {
      sendJson(res, 405, { error: 'Use POST' }, { allow: 'POST' });
      return true;
    }
    if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) {
      sendJson(res, 415, { error: 'Send application/json' });
      return true;
    }
    void (async () => {
      let input: unknown;
      try {
        input = JSON.parse(await readBody(req));
      } catch (error) {
        sendJson(res, error instanceof BodyTooLarge ? 413 : 400, { error: error instanceof BodyTooLarge ? 'Body too large' : 'Invalid JSON' });
        return;
      }
      const { userId, name } = (input ?? {}) as { userId?: unknown; name?: unknown };
      if (typeof userId !== 'string' || !isValidUserId(userId)) {
        sendJson(res, 400, { error: 'userId: 1 to 128 of A-Z a-z 0-9 _ . @ : | + -', field: 'userId' });
        return;
      }
      if (name !== undefined && (typeof name !== 'string' || name.trim().length > 100)) {
        sendJson(res, 400, { error: 'name: at most 100 characters', field: 'name' });
        return;
      }
      const token = await signToken(secret, userId, {
        name: typeof name === 'string' && name.trim() !== '' ? name.trim() : undefined,
        expiresIn: DEV_TOKEN_LIFETIME,
        issuer: config.jwtIssuer,
        audience: config.jwtAudience,
      });
      sendJson(res, 200, { token });
    })().catch(() => {
      if (!res.headersSent) sendJson(res, 500, { error: 'Internal error' });
    });
    return true;
  };
}

class BodyTooLarge extends Error {}

/** The body as text; past MAX_BODY_BYTES it is drained and dropped (destroying the request would take the socket, and our answer, with it). */
function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    req.on('end', () => (size > MAX_BODY_BYTES ? reject(new BodyTooLarge()) : resolve(Buffer.concat(chunks).toString('utf8'))));
    req.on('error', reject);
  });
}
