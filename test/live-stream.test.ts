import { describe, expect, it } from 'vitest';
import type { Context } from '../src/context.js';
import { ignoreObserver } from '../src/realtime/broker/broker.js';
import { LiveStream, type StreamDeps } from '../src/realtime/streams/live-stream.js';

// A stream's iterator mode: what a transport that does not attach a sink
// (graphql-js's own `subscribe`) sees. The fast lane is covered by every
// transport test; this mode by none of them, so it is driven here directly.

class Numbers extends LiveStream {
  torn = 0;
  constructor() {
    const deps = { observer: ignoreObserver } as unknown as StreamDeps;
    super({ viewer: { id: 'u', name: 'U' }, realtime: { streamDeps: deps } } as unknown as Context, 'numbers');
  }
  push(n: number): void {
    void this.emit(n);
  }
  protected activate(): void {}
  protected teardown(): void {
    this.torn++;
  }
}

describe('a live stream iterated as an AsyncIterator', () => {
  it('yields what was emitted before and after the first next(), in order', async () => {
    const stream = new Numbers();
    const first = stream.next();
    stream.push(1);
    stream.push(2);
    stream.push(3);
    expect(await first).toEqual({ value: 1, done: false });
    expect(await stream.next()).toEqual({ value: 2, done: false });
    expect(await stream.next()).toEqual({ value: 3, done: false });
    const waiting = stream.next();
    stream.push(4);
    expect(await waiting).toEqual({ value: 4, done: false });
  });

  it('ends a pending next() when the client returns, and tears down once', async () => {
    const stream = new Numbers();
    const waiting = stream.next();
    await stream.return();
    expect(await waiting).toEqual({ value: undefined, done: true });
    expect(await stream.next()).toEqual({ value: undefined, done: true });
    await stream.return();
    expect(stream.torn).toBe(1);
  });

  it('rejects with the error the stream ended with, once', async () => {
    const stream = new Numbers();
    const waiting = stream.next();
    const { GraphQLError } = await import('graphql');
    (stream as unknown as { end(error: unknown): void }).end(new GraphQLError('gone'));
    await expect(waiting).rejects.toThrow('gone');
    expect(await stream.next()).toEqual({ value: undefined, done: true });
  });

  it('ends as a slow consumer when more than 10,000 events queue up unread', async () => {
    const stream = new Numbers();
    const pending = stream.next();
    // The pending next() takes the first event; the rest queue, and the 10,001st queued ends the
    // stream: what was queued is still read, then the error, and nothing pushed after it.
    for (let i = 0; i <= 10_005; i++) stream.push(i);
    expect(await pending).toEqual({ value: 0, done: false });
    let read = 0;
    await expect(
      (async () => {
        for (;;) {
          const { done } = await stream.next();
          if (done) return;
          read++;
        }
      })(),
    ).rejects.toThrow();
    expect(read).toBe(10_001);
    expect(stream.torn).toBe(1);
  });
});
