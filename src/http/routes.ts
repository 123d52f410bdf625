import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * A piece of the HTTP server outside GraphQL: answers the request and returns
 * true when the path is its own, returns false (having touched nothing) when
 * it is not, so the caller can try the next one and finally Yoga.
 */
export type RouteHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

export function pathnameOf(req: IncomingMessage): string {
  return (req.url ?? '/').split('?')[0]!;
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers }).end(JSON.stringify(body));
}

export function sendText(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...headers }).end(text);
}

/** Tries each handler in turn; the first that takes the request wins. */
export function firstOf(...handlers: RouteHandler[]): RouteHandler {
  return (req, res) => handlers.some((handle) => handle(req, res));
}
