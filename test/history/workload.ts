import { setMaxListeners } from 'node:events';
import WebSocket from 'ws';
import { createChatClient, type ChatClient, type ChatError } from '../../client/src/index.js';
import { endpoint, uid, userAt, type TestUser } from '../support/server.js';
import type { SendRecord } from './checker.js';
import type { HistoryRecorder } from './recorder.js';

/**
 * The traffic of a history run: users in direct conversations, small groups
 * (fan-out on write) and groups larger than FANOUT_DIRECT_MAX (fan-out on
 * read), one SDK session per user, spread over the load balancer and the
 * instances directly, every session sending (the SDK's `send`) and receiving
 * (`onMessage`), everything recorded. About a third of a client's actions
 * change an existing message instead (the event log): an edit or, rarely, a
 * deletion of one of its own, a reaction added or taken back on any; the
 * checker then compares every client's local model with the database.
 *
 * Conversations come in two halves. "steady" ones keep sending well after
 * the fault heals, so a message lost during the fault may be repaired by a
 * later one; "tail" ones stop a few seconds after it heals, so a lost last
 * message can only be repaired by the server's own mechanisms. The checker
 * reports each half on its own.
 */

export type Mode = 'steady' | 'tail';
export type Kind = 'direct' | 'small' | 'large';

export interface WorkloadConversation {
  id: string;
  kind: Kind;
  mode: Mode;
  members: string[];
}

export interface WorkloadOptions {
  recorder: HistoryRecorder;
  /** Names this run's users (each gets a unique id). */
  prefix: string;
  users: number;
  /** Where setup requests go (the load balancer). */
  setupUrl: string;
  /** Where clients connect: user i uses urls[i % urls.length]. */
  urls: readonly string[];
  /** Members of a small group (at most FANOUT_DIRECT_MAX) and of a large one (more). */
  smallGroupSize: number;
  largeGroupSize: number;
  /** Pause between two sends of one client, drawn uniformly from this range (ms). */
  pauseMs: readonly [number, number];
  /** SDK settings that make the clients quick to notice and recover, so that what is measured is the server. */
  client: { keepAliveMs: number; requestTimeoutMs: number; retry: { initialDelayMs: number; maxDelayMs: number } };
}

interface Participant {
  name: string;
  user: TestUser;
  url: string;
  chat: ChatClient;
  conversations: WorkloadConversation[];
  errors: ChatError[];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The share of a client's actions that change an existing message rather than send a new one. */
const CHANGE_SHARE = 0.35;
const REACTIONS = ['👍', '🎉', '👀'];

export class Workload {
  readonly conversations: WorkloadConversation[] = [];
  /** Sessions that went from live back to connecting (a socket dropped or replaced). */
  reconnects = 0;
  private readonly participants: Participant[] = [];
  private readonly stopAt: Record<Mode, number> = { steady: Number.POSITIVE_INFINITY, tail: Number.POSITIVE_INFINITY };
  private loops: Promise<void>[] = [];
  private readonly inFlight = new Map<Promise<unknown>, Mode>();
  private readonly giveUp: Record<Mode, AbortController> = { steady: new AbortController(), tail: new AbortController() };

  private constructor(private readonly options: WorkloadOptions) {
    // Every send of a half shares its give-up signal: hundreds of listeners are expected, not a leak.
    for (const controller of Object.values(this.giveUp)) setMaxListeners(0, controller.signal);
  }

  /** Creates the users and conversations, opens a session per user and waits until every session is live. */
  static async create(options: WorkloadOptions): Promise<Workload> {
    const workload = new Workload(options);
    try {
      await workload.setup();
    } catch (error) {
      await workload.close();
      throw error;
    }
    return workload;
  }

  private async setup(): Promise<void> {
    const { users: n, prefix } = this.options;
    const setup = endpoint(this.options.setupUrl);
    const users: TestUser[] = [];
    for (let i = 0; i < n; i++) users.push(await userAt(setup, uid(`${prefix}${i}`)));

    const add = async (kind: Kind, memberIndexes: number[], index: number) => {
      const members = memberIndexes.map((i) => users[i % n]!);
      const [owner, ...others] = members;
      const id =
        kind === 'direct'
          ? ((await owner!.ok('mutation($u: ID!) { startDirectConversation(userId: $u) { id } }', { u: others[0]!.id })).startDirectConversation.id as string)
          : ((await owner!.ok('mutation($t: String!, $m: [ID!]!) { createGroup(title: $t, memberIds: $m) { id } }', { t: `${kind} ${index}`, m: others.map((u) => u.id) }))
              .createGroup.id as string);
      // Alternate halves within each kind, so each half has every kind.
      this.conversations.push({ id, kind, mode: index % 2 === 0 ? 'steady' : 'tail', members: members.map((u) => u.id) });
    };
    // Every user: two direct conversations (with the next and the previous user),
    // one small group and one large group; members sit on different paths.
    for (let i = 0; i < n; i++) await add('direct', [i, i + 1], i);
    const small = this.options.smallGroupSize;
    const smallCount = Math.floor(n / small);
    for (let g = 0; g < smallCount; g++) await add('small', Array.from({ length: small }, (_, k) => g + k * smallCount), g);
    const largeCount = Math.max(1, Math.floor(n / this.options.largeGroupSize));
    for (let g = 0; g < largeCount; g++) {
      const members = Array.from({ length: n }, (_, i) => i).filter((i) => i % largeCount === g);
      await add('large', members, g);
    }

    const { recorder, urls, client } = this.options;
    for (const [i, user] of users.entries()) {
      const mine = this.conversations.filter((c) => c.members.includes(user.id));
      const url = urls[i % urls.length]!;
      const name = `${user.id}@${i % urls.length}`;
      const chat = createChatClient({
        url,
        token: user.token,
        webSocketImpl: WebSocket,
        keepAliveMs: client.keepAliveMs,
        requestTimeoutMs: client.requestTimeoutMs,
        retry: client.retry,
        // Following each conversation from seq 0: the session must deliver all of it.
        cursors: Object.fromEntries(mine.map((c) => [c.id, 0])),
        fetch: recorder.fetchFor(),
      });
      const errors: ChatError[] = [];
      chat.onError((error) => errors.push(error));
      // Reconnects after the session first went live: the clients noticed the fault.
      let live = false;
      chat.onStatus((status) => {
        if (status === 'live') live = true;
        else if (status === 'connecting' && live) this.reconnects++;
      });
      recorder.attach(name, user.id, chat, Object.fromEntries(mine.map((c) => [c.id, 0])));
      recorder.model(name, chat, mine.map((c) => c.id));
      this.participants.push({ name, user, url, chat, conversations: mine, errors });
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const notLive = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`sessions not live after 60 s: ${this.participants.filter((p) => p.chat.status !== 'live').map((p) => p.name).join(', ')}`)), 60_000);
    });
    try {
      await Promise.race([Promise.all(this.participants.map((p) => p.chat.ready())), notLive]);
    } finally {
      clearTimeout(timer);
    }
  }

  get sessions(): number {
    return this.participants.length;
  }

  /** Starts every client's sending loop. */
  start(): void {
    this.loops = this.participants.map((p) => this.loop(p));
  }

  /** Conversations of `mode` send nothing new from `at` (epoch ms) on. */
  stop(mode: Mode, at: number): void {
    this.stopAt[mode] = at;
  }

  private async loop(p: Participant): Promise<void> {
    const { recorder, pauseMs } = this.options;
    const busy = new Set<string>();
    let n = 0;
    // Start at different moments, as real users do.
    await sleep(Math.random() * pauseMs[1]);
    for (;;) {
      const now = Date.now();
      const open = p.conversations.filter((c) => now < this.stopAt[c.mode]);
      if (open.length === 0) return;
      // One send at a time per conversation (the SDK queues more; a stuck one would only pile up).
      const free = open.filter((c) => !busy.has(c.id));
      if (free.length > 0) {
        const c = free[Math.floor(Math.random() * free.length)]!;
        busy.add(c.id);
        const change = Math.random() < CHANGE_SHARE ? this.change(p, c, ++n) : undefined;
        const work: Promise<unknown> = change ?? recorder.send(p.name, p.user.id, p.chat, c.id, `${p.name} #${++n}`, this.giveUp[c.mode].signal);
        this.inFlight.set(work, c.mode);
        void work.finally(() => {
          busy.delete(c.id);
          this.inFlight.delete(work);
        });
      }
      await sleep(pauseMs[0] + Math.random() * (pauseMs[1] - pauseMs[0]));
    }
  }

  /** An edit, deletion or reaction on a message of `c` this client holds, or undefined when there is none to change. */
  private change(p: Participant, c: WorkloadConversation, n: number): Promise<void> | undefined {
    const messages = p.chat.local.timeline(c.id, { threadReplies: true }).filter((m) => m.deletedAt === null).slice(-10);
    const own = messages.filter((m) => m.sender.id === p.user.id);
    const signal = this.giveUp[c.mode].signal;
    const roll = Math.random();
    const pick = <T>(list: T[]) => list[Math.floor(Math.random() * list.length)];
    if (roll < 0.5 && own.length > 0) {
      const target = pick(own)!;
      return roll < 0.05
        ? this.options.recorder.change(p.name, p.user.id, p.chat, c.id, target.seq, { kind: 'delete' }, signal)
        : this.options.recorder.change(p.name, p.user.id, p.chat, c.id, target.seq, { kind: 'edit', body: `${p.name} edit ${n}` }, signal);
    }
    const target = pick(messages);
    if (!target) return undefined;
    const reaction = pick(REACTIONS)!;
    const mine = target.reactions.some((r) => r.reaction === reaction && r.reactedByViewer);
    return this.options.recorder.change(p.name, p.user.id, p.chat, c.id, target.seq, { kind: mine ? 'unreact' : 'react', reaction }, signal);
  }

  /**
   * Waits until conversations of `mode` have stopped sending (stop() must
   * have been called for it) and every one of their sends has settled; sends
   * still unsettled after `timeoutMs` are aborted (recorded as pending: they
   * may still have been stored). Resolves with the moment the last one settled.
   */
  async drain(mode: Mode, timeoutMs: number): Promise<number> {
    while (Date.now() < this.stopAt[mode]) await sleep(Math.min(100, this.stopAt[mode] - Date.now()));
    // A loop may be between choosing a conversation and registering its send.
    await sleep(10);
    const mine = () => [...this.inFlight].filter(([, m]) => m === mode).map(([send]) => send);
    const deadline = Date.now() + timeoutMs;
    while (mine().length > 0 && Date.now() < deadline) await sleep(50);
    if (mine().length > 0) {
      this.giveUp[mode].abort();
      await Promise.all(mine());
    }
    return Date.now();
  }

  /** Resolves when every client has stopped sending. */
  async finished(): Promise<void> {
    await Promise.all(this.loops);
  }

  conversationIds(mode?: Mode): string[] {
    return this.conversations.filter((c) => !mode || c.mode === mode).map((c) => c.id);
  }

  /** Errors the sessions reported (handled by themselves), by code and message (ids and numbers blurred), for the report. */
  errorCounts(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const p of this.participants) {
      for (const e of p.errors) {
        const key = `${e.code}: ${e.message.replace(/[0-9a-f-]{36}/g, '<id>').replace(/\d+/g, 'N').slice(0, 80)}`;
        counts[key] = (counts[key] ?? 0) + 1;
      }
    }
    return counts;
  }

  async close(): Promise<void> {
    this.giveUp.steady.abort();
    this.giveUp.tail.abort();
    await Promise.all(this.participants.map((p) => p.chat.close()));
  }
}
