import { ChatError, ErrorCode } from './errors.js';

/** What the SDK tells `getToken` when it asks. */
export interface TokenRequest {
  /**
   * The server refused the last token (expired or invalid): return a fresh
   * one, not a cached copy.
   */
  rejected: boolean;
}

/**
 * Supplies bearer tokens. Called for every (re)connect of the WebSocket (its
 * `connection_init` carries the token, so a reconnect re-authenticates), when
 * HTTP has no token yet, and after the server answers UNAUTHENTICATED.
 */
export type GetToken = (request: TokenRequest) => string | Promise<string>;

/** How the session obtains tokens; one per session, shared by HTTP and WebSocket. */
export interface TokenSource {
  /** The token for the next HTTP request (the last one obtained, or a first one). */
  current(): Promise<string>;
  /** A fresh token after a rejection; concurrent callers share one `getToken` call. */
  refresh(): Promise<string>;
  /** A token for a new WebSocket connection; `rejected` when the last socket was closed with 4403. */
  forConnection(rejected: boolean): Promise<string>;
  /** False with a fixed `token`: refreshing cannot help, so callers should not retry. */
  readonly canRefresh: boolean;
}

export function createTokenSource(options: { token?: string; getToken?: GetToken }): TokenSource {
  const { getToken } = options;
  if (!getToken && !options.token) throw new ChatError(ErrorCode.BAD_USER_INPUT, 'createChatClient needs `token` or `getToken`', { field: 'token' });
  let latest: string | undefined = options.token;
  let refreshing: Promise<string> | undefined;

  async function ask(rejected: boolean): Promise<string> {
    if (!getToken) return latest!;
    const token = await getToken({ rejected });
    if (typeof token !== 'string' || token === '') throw new ChatError(ErrorCode.UNAUTHENTICATED, 'getToken returned no token');
    latest = token;
    return token;
  }

  return {
    canRefresh: getToken !== undefined,
    async current() {
      return latest ?? (await (refreshing ??= ask(false).finally(() => (refreshing = undefined))));
    },
    refresh() {
      return (refreshing ??= ask(true).finally(() => (refreshing = undefined)));
    },
    forConnection(rejected) {
      return ask(rejected);
    },
  };
}
