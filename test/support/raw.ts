import WebSocket from 'ws';

/** Where an operation can go: the three transports every limit and error must agree on. */
export const ALL_TRANSPORTS = ['http', 'sse', 'ws'] as const;
export type AnyTransport = (typeof ALL_TRANSPORTS)[number];

export interface RawError {
  message: string;
  extensions?: { code?: string; [key: string]: unknown };
  path?: unknown[];
}

/** What came back for one operation, whatever the transport. */
export interface RawResult {
  data?: Record<string, any> | null;
  errors?: RawError[];
  /** HTTP status (HTTP and SSE). */
  status?: number;
  /** WebSocket close code, when the socket was closed instead of answered. */
  closeCode?: number;
  closeReason?: string;
}

export interface RawOptions {
  url: string;
  token?: string;
  /** Sent with the operation: `documentId`, `extensions`, `operationName`. */
  extra?: Record<string, unknown>;
  timeoutMs?: number;
}

/** One operation over plain HTTP (JSON), as any client would send it. */
export async function overHttp(query: string | undefined, variables: Record<string, unknown> | undefined, options: RawOptions): Promise<RawResult> {
  const response = await fetch(options.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', ...(options.token && { authorization: `Bearer ${options.token}` }) },
    body: JSON.stringify({ query, variables, ...options.extra }),
  });
  return { ...((await response.json()) as RawResult), status: response.status };
}

/** The events of a GraphQL-over-SSE response, read to its end (or `untilEvents`). */
export async function overSse(
  query: string | undefined,
  variables: Record<string, unknown> | undefined,
  options: RawOptions & { untilEvents?: number },
): Promise<RawResult & { events: RawResult[] }> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), options.timeoutMs ?? 10_000);
  try {
    const response = await fetch(options.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...(options.token && { authorization: `Bearer ${options.token}` }) },
      body: JSON.stringify({ query, variables, ...options.extra }),
      signal: controller.signal,
    });
    if (!(response.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
      return { ...((await response.json()) as RawResult), status: response.status, events: [] };
    }
    const events: RawResult[] = [];
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block.split('\n').find((line) => line.startsWith('data: '));
        if (block.startsWith('event: next') && data) events.push(JSON.parse(data.slice(6)) as RawResult);
      }
      if (options.untilEvents !== undefined && events.length >= options.untilEvents) {
        controller.abort();
        break;
      }
    }
    const last = events.at(-1) ?? {};
    return { ...last, status: response.status, events };
  } finally {
    clearTimeout(timer);
  }
}

/** One operation over graphql-transport-ws on a fresh socket: init, subscribe, the first answer (or the close). */
export async function overWs(query: string | undefined, variables: Record<string, unknown> | undefined, options: RawOptions & { localAddress?: string }): Promise<RawResult> {
  const socket = new WebSocket(options.url.replace(/^http/, 'ws'), 'graphql-transport-ws', options.localAddress ? { localAddress: options.localAddress } : {});
  try {
    return await new Promise<RawResult>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no answer over the WebSocket')), options.timeoutMs ?? 10_000);
      const done = (result: RawResult) => {
        clearTimeout(timer);
        resolve(result);
      };
      socket.on('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk));
        res.on('end', () => done({ ...(body ? (JSON.parse(body) as RawResult) : {}), status: res.statusCode }));
      });
      socket.on('error', () => {});
      socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: options.token ? { authorization: `Bearer ${options.token}` } : {} })));
      socket.on('close', (code, reason) => done({ closeCode: code, closeReason: reason.toString() }));
      socket.on('message', (raw) => {
        const message = JSON.parse(String(raw)) as { type: string; id?: string; payload?: any };
        if (message.type === 'connection_ack') {
          socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query, variables, ...options.extra } }));
        } else if (message.type === 'next' && message.id === '1') {
          done(message.payload as RawResult);
        } else if (message.type === 'error' && message.id === '1') {
          done({ errors: message.payload as RawError[] });
        }
      });
    });
  } finally {
    socket.terminate();
  }
}

/** One operation over the named transport. */
export function runVia(transport: AnyTransport, query: string | undefined, variables: Record<string, unknown> | undefined, options: RawOptions): Promise<RawResult> {
  if (transport === 'http') return overHttp(query, variables, options);
  if (transport === 'sse') return overSse(query, variables, { ...options, untilEvents: 1 });
  return overWs(query, variables, options);
}

/** The first error's code of a result that must have failed. */
export function codeOf(result: RawResult): string | undefined {
  if (!result.errors?.length) throw new Error(`expected an error, got ${JSON.stringify(result).slice(0, 500)}`);
  return result.errors[0]!.extensions?.code;
}
