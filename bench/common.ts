import { randomUUID } from 'node:crypto';
import { io } from 'socket.io-client';
import WebSocket from 'ws';
import { signToken } from '../src/auth.js';

/** What every scenario is given by bench/run.ts. */
export interface Context {
  databaseUrl: string;
  secret: string;
  /** Client processes that hold the sockets. */
  workers: number;
}

/** One line of the summary table: a goal, what was measured, what it is measured against. */
export interface Row {
  goal: string;
  measured: string;
  baseline: string;
  /** measured / baseline (or null where the goal is absolute). */
  ratio: number | null;
  met: boolean;
}

export const now = () => performance.timeOrigin + performance.now();
export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
export const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
};
export const round = (n: number, digits = 1) => Number(n.toFixed(digits));
export const log = (line: string) => console.log(`  ${line}`);

/** A function that sends one message and resolves with its seq once the server has answered. */
export type Send = (conversationId: string, body: string) => Promise<number>;

const SEND_MESSAGE = 'mutation($c: ID!, $b: String!, $m: String!) { sendMessage(conversationId: $c, body: $b, clientMessageId: $m) { seq } }';

/** Sends over a graphql-ws socket, as a chat client holding one socket would (mutations are allowed over it). */
export async function socketSender(wsUrl: string, secret: string, userId: string): Promise<Send & { close(): void }> {
  const token = await signToken(secret, userId, { name: userId });
  const socket = new WebSocket(wsUrl, 'graphql-transport-ws');
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  const pending = new Map<string, { resolve: (seq: number) => void; reject: (error: Error) => void }>();
  await new Promise<void>((resolve) => {
    socket.on('message', (data) => {
      const message = JSON.parse(String(data));
      if (message.type === 'connection_ack') return resolve();
      const waiter = pending.get(message.id);
      if (!waiter) return;
      if (message.type === 'next') {
        pending.delete(message.id);
        if (message.payload.data?.sendMessage) waiter.resolve(message.payload.data.sendMessage.seq);
        else waiter.reject(new Error(JSON.stringify(message.payload.errors)));
      } else if (message.type === 'error') {
        pending.delete(message.id);
        waiter.reject(new Error(JSON.stringify(message.payload)));
      }
    });
    socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }));
  });
  let next = 0;
  const send = (conversationId: string, body: string): Promise<number> =>
    new Promise((resolve, reject) => {
      const id = String(++next);
      pending.set(id, { resolve, reject });
      socket.send(JSON.stringify({ id, type: 'subscribe', payload: { query: SEND_MESSAGE, variables: { c: conversationId, b: body, m: randomUUID() } } }));
    });
  return Object.assign(send, { close: () => socket.terminate() });
}

/** Sends with an HTTP POST per message. */
export async function httpSender(httpUrl: string, secret: string, userId: string): Promise<Send & { close(): void }> {
  const token = await signToken(secret, userId, { name: userId });
  const send = async (conversationId: string, body: string): Promise<number> => {
    const response = await fetch(httpUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: SEND_MESSAGE, variables: { c: conversationId, b: body, m: randomUUID() } }),
    });
    const result = (await response.json()) as any;
    if (!result.data) throw new Error(JSON.stringify(result.errors));
    return result.data.sendMessage.seq;
  };
  return Object.assign(send, { close: () => {} });
}

/** Sends to the Socket.IO peer: emit 'send' with an acknowledgement carrying the stored seq. */
export async function socketIoSender(url: string, secret: string, userId: string): Promise<Send & { close(): void }> {
  const token = await signToken(secret, userId, { name: userId });
  const socket = io(url, { transports: ['websocket'], auth: { token }, reconnection: false, forceNew: true });
  await new Promise<void>((resolve, reject) => socket.once('connect', () => resolve()).once('connect_error', reject));
  const send = async (conversationId: string, body: string): Promise<number> => {
    const reply = (await socket.emitWithAck('send', { conversationId, body, clientMessageId: randomUUID() })) as { seq?: number; error?: string };
    if (reply.seq === undefined) throw new Error(`Socket.IO send: ${reply.error}`);
    return reply.seq;
  };
  return Object.assign(send, { close: () => socket.disconnect() });
}
