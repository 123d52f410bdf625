/**
 * Development sign-in. The server signs a token for any user id at
 * POST /dev/token, but only while it runs on its development secret (the
 * embedded default); otherwise that answers 404 and the app asks for a
 * token from elsewhere (`npm run token`, or your identity provider).
 * A real app gets its token from its own backend: replace this file.
 */

export interface Account {
  userId: string;
  name: string;
  token: string;
  /** Signed in with /dev/token: a refused token can be renewed without asking. */
  dev: boolean;
}

const STORAGE_KEY = 'chat-web-account';

export class DevSignInUnavailable extends Error {
  constructor() {
    super('Development sign-in is off on this server (JWT_SECRET or JWT_JWKS_URL is set): paste a token instead.');
  }
}

export async function devToken(userId: string, name: string): Promise<string> {
  const response = await fetch('/dev/token', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ userId, name }),
  });
  if (response.status === 404) throw new DevSignInUnavailable();
  const body = (await response.json().catch(() => ({}))) as { token?: string; error?: string };
  if (!response.ok || !body.token) throw new Error(body.error ?? `Sign-in failed (${response.status})`);
  return body.token;
}

/** The user id and name inside a token (no verification: the server does that). */
export function readToken(token: string): { userId: string; name: string } {
  try {
    const payload = JSON.parse(atob(token.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/'))) as { sub?: string; name?: string };
    if (!payload.sub) throw new Error();
    return { userId: payload.sub, name: payload.name ?? payload.sub };
  } catch {
    throw new Error('That does not look like a token');
  }
}

export function loadAccount(): Account | null {
  try {
    return JSON.parse(localStorage.getItem(STORAGE_KEY) ?? 'null') as Account | null;
  } catch {
    return null;
  }
}

export function saveAccount(account: Account | null): void {
  if (account) localStorage.setItem(STORAGE_KEY, JSON.stringify(account));
  else localStorage.removeItem(STORAGE_KEY);
}
