import net from 'node:net';

/**
 * A real TCP proxy in front of a test server, for breaking connections the
 * way networks do: cut every connection at once, refuse new ones (offline),
 * lose the answer to one HTTP request after the server has processed it, or
 * lose / duplicate one WebSocket frame from the server.
 *
 * Bytes are piped untouched, except server-to-client WebSocket traffic,
 * which is split into frames (server frames are unmasked and, with
 * permessage-deflate off as on our server, plain text) so that a whole frame
 * can be dropped or repeated without corrupting the stream.
 */
export interface TcpProxy {
  readonly port: number;
  /** http://127.0.0.1:<port>/graphql */
  readonly url: string;
  /** Open client connections (HTTP and WebSocket). */
  readonly connections: number;
  /** Destroys every open connection, both sides (like a dropped network path). */
  cutAll(): void;
  /** New connections go to this port from now on (another instance); open ones stay. */
  setTarget(port: number): void;
  /** While offline, new connections are accepted and destroyed at once; open ones are cut. */
  setOffline(offline: boolean): void;
  /**
   * The next HTTP request whose bytes so far match `predicate` reaches the
   * server, but its response is swallowed and the connection closed. Resolves
   * once that has happened (the server answered: it processed the request).
   */
  loseNextResponse(predicate?: (request: string) => boolean): Promise<void>;
  /** Resolves when an HTTP request whose bytes so far match `predicate` passes through. */
  waitForRequest(predicate: (request: string) => boolean): Promise<void>;
  /** When a request matching `predicate` passes (after `skip` earlier matches), cut every connection. Resolves then. */
  cutOnRequest(predicate: (request: string) => boolean, options?: { skip?: number }): Promise<void>;
  /** Drops the next server-to-client WebSocket text frame matching `predicate`. Resolves when dropped. */
  dropNextFrame(predicate: (text: string) => boolean): Promise<void>;
  /** Sends the next server-to-client WebSocket text frame matching `predicate` twice. */
  duplicateNextFrame(predicate: (text: string) => boolean): Promise<void>;
  close(): Promise<void>;
}

interface Pair {
  client: net.Socket;
  server: net.Socket;
  websocket: boolean;
  /** Client bytes of the current HTTP request (reset when its response starts). */
  request: string;
  swallow?: () => void;
}

interface FrameRule {
  predicate: (text: string) => boolean;
  action: 'drop' | 'duplicate';
  done: () => void;
}

export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  let target = targetPort;
  const pairs = new Set<Pair>();
  let offline = false;
  let lose: { predicate: (request: string) => boolean; done: () => void } | undefined;
  const cutRules: { predicate: (request: string) => boolean; skip: number; done: () => void }[] = [];
  const watchers: { predicate: (request: string) => boolean; done: () => void }[] = [];
  const frameRules: FrameRule[] = [];

  const destroy = (pair: Pair) => {
    pair.client.destroy();
    pair.server.destroy();
    pairs.delete(pair);
  };
  const cutAll = () => {
    for (const pair of [...pairs]) destroy(pair);
  };

  /** Splits server-to-client WebSocket bytes into frames and applies the frame rules. */
  function frameFilter(pair: Pair) {
    let buffer = Buffer.alloc(0);
    let headersDone = false;
    return (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      if (!headersDone) {
        const end = buffer.indexOf('\r\n\r\n');
        if (end < 0) return;
        pair.client.write(buffer.subarray(0, end + 4));
        buffer = buffer.subarray(end + 4);
        headersDone = true;
      }
      for (;;) {
        if (buffer.length < 2) return;
        const opcode = buffer[0]! & 0x0f;
        const masked = (buffer[1]! & 0x80) !== 0;
        let length = buffer[1]! & 0x7f;
        let offset = 2;
        if (length === 126) {
          if (buffer.length < 4) return;
          length = buffer.readUInt16BE(2);
          offset = 4;
        } else if (length === 127) {
          if (buffer.length < 10) return;
          length = Number(buffer.readBigUInt64BE(2));
          offset = 10;
        }
        if (masked) offset += 4;
        if (buffer.length < offset + length) return;
        const frame = buffer.subarray(0, offset + length);
        buffer = buffer.subarray(offset + length);
        let copies = 1;
        if (opcode === 1 && !masked) {
          const text = frame.subarray(offset).toString('utf8');
          const rule = frameRules.find((candidate) => candidate.predicate(text));
          if (rule) {
            frameRules.splice(frameRules.indexOf(rule), 1);
            copies = rule.action === 'drop' ? 0 : 2;
            rule.done();
          }
        }
        for (let i = 0; i < copies; i++) pair.client.write(frame);
      }
    };
  }

  const server = net.createServer((client) => {
    if (offline) {
      client.destroy();
      return;
    }
    const upstream = net.connect(target, targetHost);
    const pair: Pair = { client, server: upstream, websocket: false, request: '' };
    pairs.add(pair);
    let toClient: ((chunk: Buffer) => void) | undefined;

    client.on('data', (chunk: Buffer) => {
      if (!pair.websocket) {
        pair.request += chunk.toString('latin1');
        if (/^upgrade:\s*websocket/im.test(pair.request)) {
          pair.websocket = true;
          toClient = frameFilter(pair);
        } else {
          if (lose && !pair.swallow && lose.predicate(pair.request)) {
            pair.swallow = lose.done;
            lose = undefined;
          }
          for (const watcher of [...watchers]) {
            if (!watcher.predicate(pair.request)) continue;
            watchers.splice(watchers.indexOf(watcher), 1);
            watcher.done();
          }
          for (const rule of [...cutRules]) {
            if (!rule.predicate(pair.request)) continue;
            if (rule.skip-- > 0) continue;
            cutRules.splice(cutRules.indexOf(rule), 1);
            // Let the request start on the server's side, then break everything.
            upstream.write(chunk, () => setImmediate(() => {
              cutAll();
              rule.done();
            }));
            return;
          }
        }
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (pair.swallow) {
        // The server answered: the request was processed. The client never hears of it.
        const done = pair.swallow;
        destroy(pair);
        done();
        return;
      }
      if (toClient) return toClient(chunk);
      pair.request = '';
      client.write(chunk);
    });
    const end = () => destroy(pair);
    client.on('error', end);
    upstream.on('error', end);
    client.on('close', end);
    upstream.on('close', end);
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;

  return {
    port,
    url: `http://127.0.0.1:${port}/graphql`,
    get connections() {
      return pairs.size;
    },
    cutAll,
    setTarget(port) {
      target = port;
    },
    setOffline(value) {
      offline = value;
      if (value) cutAll();
    },
    loseNextResponse(predicate = () => true) {
      return new Promise((resolve) => (lose = { predicate, done: resolve }));
    },
    waitForRequest(predicate) {
      return new Promise((resolve) => watchers.push({ predicate, done: resolve }));
    },
    cutOnRequest(predicate, options = {}) {
      return new Promise((resolve) => cutRules.push({ predicate, skip: options.skip ?? 0, done: resolve }));
    },
    dropNextFrame(predicate) {
      return new Promise((resolve) => frameRules.push({ predicate, action: 'drop', done: resolve }));
    },
    duplicateNextFrame(predicate) {
      return new Promise((resolve) => frameRules.push({ predicate, action: 'duplicate', done: resolve }));
    },
    async close() {
      cutAll();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
