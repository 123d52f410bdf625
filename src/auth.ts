import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createRemoteJWKSet, jwtVerify, SignJWT, type JWTVerifyGetKey } from 'jose';
import type { Config } from './config.js';
import { badInput, unauthenticated } from './errors.js';
import { unstorable } from './security/text.js';

/** The authenticated user on whose behalf an operation runs. */
export interface Viewer {
  id: string;
  name: string;
  /**
   * When the token stops being valid, in whole seconds since the epoch (the
   * JWT's `exp`); WebSockets are closed then. Seconds, not milliseconds: a
   * small integer is stored in the object itself, a millisecond time would
   * be a heap number beside every idle connection's viewer.
   */
  expiresAtSeconds?: number;
}

export interface Auth {
  /**
   * Verifies a bearer token; throws an UNAUTHENTICATED GraphQLError when it
   * is not acceptable. `remember: false` for a token used once (a WebSocket's
   * connection_init), so the cache holds only tokens that come back.
   */
  verify(token: string, options?: { remember?: boolean }): Promise<Viewer>;
  /** Reads `Authorization: Bearer …`; no header means an anonymous request (null). */
  fromAuthorizationHeader(header: string | null | undefined): Promise<Viewer | null>;
}

/** User ids are the identity provider's `sub`: kept printable and bounded. */
const USER_ID = /^[A-Za-z0-9_.@:|+-]{1,128}$/;

export function isValidUserId(id: string): boolean {
  return USER_ID.test(id);
}

/**
 * The development secret of the embedded default: generated once and kept
 * under the data directory so tokens survive restarts. Never used when
 * JWT_SECRET or JWT_JWKS_URL is set.
 */
export async function loadDevelopmentSecret(dataDir: string): Promise<string> {
  const file = path.join(dataDir, 'jwt-secret');
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  await mkdir(dataDir, { recursive: true });
  const secret = randomBytes(32).toString('base64url');
  // 'wx' fails if another process created it first; then use theirs.
  try {
    await writeFile(file, secret + '\n', { mode: 0o600, flag: 'wx' });
    return secret;
  } catch {
    return (await readFile(file, 'utf8')).trim();
  }
}

/** Resolves the HS256 secret the server verifies with (and `npm run token` signs with). */
export async function resolveSecret(config: Config): Promise<string | undefined> {
  if (config.jwtSecret) return config.jwtSecret;
  if (config.jwtJwksUrl) return undefined;
  return loadDevelopmentSecret(config.dataDir);
}

export async function createAuth(config: Config): Promise<Auth> {
  const secret = await resolveSecret(config);
  // The HMAC key is imported into WebCrypto once: given raw bytes, jose imports
  // them again on every verification (about a third of the cost of each one).
  const key: CryptoKey | JWTVerifyGetKey = secret
    ? await crypto.subtle.importKey('raw', new TextEncoder().encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['verify'])
    : createRemoteJWKSet(new URL(config.jwtJwksUrl!));
  const options = {
    issuer: config.jwtIssuer,
    audience: config.jwtAudience,
    algorithms: secret ? ['HS256'] : ['RS256', 'ES256', 'EdDSA', 'PS256'],
  };

  // A client sends the same token with every request; verifying its
  // signature each time (WebCrypto, asynchronous) is most of the cost of
  // authentication. Remember tokens that verified, until they expire.
  const verified = new Map<string, Viewer>();
  const VERIFIED_MAX = 50_000;
  const UNTIMED_TTL_MS = 5 * 60_000;

  async function verify(token: string, options: { remember?: boolean } = {}): Promise<Viewer> {
    const known = verified.get(token);
    if (known && (known.expiresAtSeconds ?? 0) * 1000 > Date.now()) return known;
    const viewer = await verifyUncached(token);
    if (options.remember === false) return viewer;
    if (verified.size >= VERIFIED_MAX) verified.clear();
    // Tokens without `exp` are re-verified every few minutes (a JWKS key may be rotated out).
    verified.set(token, viewer.expiresAtSeconds ? viewer : { ...viewer, expiresAtSeconds: Math.floor((Date.now() + UNTIMED_TTL_MS) / 1000) });
    return viewer;
  }

  async function verifyUncached(token: string): Promise<Viewer> {
    let payload;
    try {
      ({ payload } = await jwtVerify(token, key as CryptoKey, options));
    } catch (error) {
      const reason = (error as { code?: string }).code === 'ERR_JWT_EXPIRED' ? 'Token expired' : 'Invalid token';
      throw unauthenticated(reason);
    }
    const sub = payload.sub;
    if (typeof sub !== 'string' || !isValidUserId(sub)) throw unauthenticated('Token has no usable subject');
    const claimed = typeof payload.name === 'string' ? payload.name : '';
    // Stored as the user's name and shown to others: storable text, NFC, like every name (README, "Text").
    const problem = unstorable(claimed);
    if (problem) throw badInput(`The token's name ${problem}`, 'name');
    const normalized = claimed.normalize('NFC').trim();
    const name = normalized !== '' ? [...normalized].slice(0, 100).join('') : sub;
    return { id: sub, name, expiresAtSeconds: typeof payload.exp === 'number' ? payload.exp : undefined };
  }

  return {
    verify,
    async fromAuthorizationHeader(header) {
      if (!header) return null;
      const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
      if (!match) throw unauthenticated('Authorization header must be "Bearer <token>"');
      return verify(match[1]!);
    },
  };
}

/** Signs an HS256 token, as an identity provider would; used by `npm run token` and tests. */
export async function signToken(
  secret: string,
  userId: string,
  options: { name?: string; expiresIn?: string | number; issuer?: string; audience?: string } = {},
): Promise<string> {
  const jwt = new SignJWT(options.name ? { name: options.name } : {})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(userId)
    .setIssuedAt()
    .setExpirationTime(options.expiresIn ?? '30d');
  if (options.issuer) jwt.setIssuer(options.issuer);
  if (options.audience) jwt.setAudience(options.audience);
  return jwt.sign(new TextEncoder().encode(secret));
}
