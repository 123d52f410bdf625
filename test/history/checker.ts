/**
 * The history checker: compares what clients saw (every send and every
 * delivery, as recorded by ./recorder.ts) with what PostgreSQL stored, and
 * counts each kind of anomaly. Pure functions over plain records, so the
 * checker itself is tested on synthetic histories (./checker.test.ts).
 *
 * Kinds (each should be zero):
 * - lost: a send the server acknowledged whose message is not stored (no
 *   row for its conversation, sender and clientMessageId, or one with
 *   another seq than the acknowledgement said).
 * - duplicated: a clientMessageId stored more than once (per sender), or a
 *   seq delivered more than once to one client (each extra copy counts).
 * - missing: a stored message that a client should have received (its user
 *   is a member and the client was subscribed to that conversation from
 *   before it) but never did.
 * - outOfOrder: a client received a seq of a conversation after a higher one
 *   of the same conversation (repeats are counted as duplicated only).
 * - unexpected: a delivery with no stored row of that conversation and seq,
 *   or one that does not match the row (another message id), or a delivery
 *   to a client whose user is not a member of the conversation.
 * - seqGaps: seqs of a conversation in the database that are absent below
 *   its highest one (or below its last_seq).
 * - lostChanges: an acknowledged edit, deletion or reaction the database does
 *   not show, unless a later change of the same thing may have overtaken it.
 * - stale: a message whose state in a client's local model (body, deleted,
 *   reaction counts) differs from the database at the end: an edit, deletion
 *   or reaction that never reached that client.
 */

export interface SendRecord {
  /** The client (session) that sent. */
  client: string;
  userId: string;
  conversationId: string;
  clientMessageId: string;
  body: string;
  startedAt: number;
  /** acked: the server answered with the stored message; rejected: send() rejected; pending: neither (yet). */
  outcome: 'pending' | 'acked' | 'rejected';
  settledAt?: number;
  /** From the acknowledgement. */
  seq?: number;
  messageId?: string;
  /** The rejection's code, when rejected. */
  error?: string;
  /** HTTP attempts seen for this clientMessageId (the SDK retries with the same id). */
  attempts: number;
}

export interface DeliveryRecord {
  client: string;
  userId: string;
  conversationId: string;
  seq: number;
  messageId: string;
  senderId: string;
  clientMessageId: string;
  at: number;
}

/**
 * A client that should receive every message of `conversationId` after
 * `afterSeq`: it was live (session open, following that conversation) for
 * the whole run. The workloads change no memberships while clients run.
 */
export interface Expectation {
  client: string;
  userId: string;
  conversationId: string;
  afterSeq: number;
}

/** A change to an existing message (the event log): recorded like a send, acknowledged or not. */
export interface ChangeRecord {
  client: string;
  userId: string;
  conversationId: string;
  seq: number;
  op: { kind: 'edit'; body: string } | { kind: 'delete' } | { kind: 'react' | 'unreact'; reaction: string };
  /** In the order the client made them (the SDK applies one conversation's changes in call order). */
  order: number;
  outcome: 'pending' | 'acked' | 'rejected';
}

/** A message as a client's local model holds it at the end of a run. */
export interface ModelMessage {
  client: string;
  conversationId: string;
  seq: number;
  body: string;
  deleted: boolean;
  /** `reaction:count` pairs, sorted. */
  reactions: string;
}

export interface History {
  sends: readonly SendRecord[];
  deliveries: readonly DeliveryRecord[];
  expectations: readonly Expectation[];
  /** Edits, deletions and reactions, when the workload makes them. */
  changes?: readonly ChangeRecord[];
  /** The clients' local models, when taken. */
  models?: readonly ModelMessage[];
}

export interface StoredMessage {
  conversationId: string;
  seq: number;
  id: string;
  senderId: string;
  clientMessageId: string;
  /** Its current state, for the event-log checks (optional for histories without changes). */
  body?: string;
  deleted?: boolean;
  /** `reaction:count` pairs, sorted. */
  reactions?: string;
  /** user + reaction pairs present, `userId\u0000reaction`. */
  reactedBy?: ReadonlySet<string>;
}

export interface StoredState {
  messages: readonly StoredMessage[];
  /** Members of each conversation (the workloads do not change them while clients run). */
  members: readonly { conversationId: string; userId: string }[];
  /** conversations.last_seq, where known. */
  lastSeqs?: ReadonlyMap<string, number>;
}

export const KINDS = ['lost', 'duplicated', 'missing', 'outOfOrder', 'unexpected', 'seqGaps', 'lostChanges', 'stale'] as const;
export type Kind = (typeof KINDS)[number];
export type Counts = Record<Kind, number>;

export interface Report {
  counts: Counts;
  /** A line per anomaly (capped per kind), for failure messages. */
  examples: Record<Kind, string[]>;
  stats: { sends: number; acked: number; rejected: number; pending: number; attempts: number; stored: number; deliveries: number; expected: number; changes: number };
}

export interface CheckOptions {
  /** Only these conversations (e.g. the tail half of a run); default: all. */
  conversations?: ReadonlySet<string>;
  /** Example lines kept per kind. Default 10. */
  examplesPerKind?: number;
}

const key = (conversationId: string, seq: number) => `${conversationId}#${seq}`;

export function zeroCounts(): Counts {
  return { lost: 0, duplicated: 0, missing: 0, outOfOrder: 0, unexpected: 0, seqGaps: 0, lostChanges: 0, stale: 0 };
}

export function checkHistory(history: History, stored: StoredState, options: CheckOptions = {}): Report {
  const only = options.conversations;
  const inScope = (conversationId: string) => !only || only.has(conversationId);
  const cap = options.examplesPerKind ?? 10;
  const counts = zeroCounts();
  const examples: Record<Kind, string[]> = { lost: [], duplicated: [], missing: [], outOfOrder: [], unexpected: [], seqGaps: [], lostChanges: [], stale: [] };
  const note = (kind: Kind, n: number, line: () => string) => {
    if (n <= 0) return;
    counts[kind] += n;
    if (examples[kind].length < cap) examples[kind].push(line());
  };

  const messages = stored.messages.filter((m) => inScope(m.conversationId));
  const sends = history.sends.filter((s) => inScope(s.conversationId));
  const deliveries = history.deliveries.filter((d) => inScope(d.conversationId));
  const expectations = history.expectations.filter((e) => inScope(e.conversationId));

  const bySeq = new Map<string, StoredMessage>();
  const byClientId = new Map<string, StoredMessage[]>();
  const seqsOf = new Map<string, Set<number>>();
  for (const m of messages) {
    bySeq.set(key(m.conversationId, m.seq), m);
    const idKey = `${m.senderId}\u0000${m.clientMessageId}`;
    byClientId.set(idKey, [...(byClientId.get(idKey) ?? []), m]);
    let seqs = seqsOf.get(m.conversationId);
    if (!seqs) seqsOf.set(m.conversationId, (seqs = new Set()));
    seqs.add(m.seq);
  }
  const members = new Set(stored.members.map((m) => `${m.conversationId}\u0000${m.userId}`));
  const isMember = (conversationId: string, userId: string) => members.has(`${conversationId}\u0000${userId}`);

  // lost
  for (const send of sends) {
    if (send.outcome !== 'acked') continue;
    const rows = (byClientId.get(`${send.userId}\u0000${send.clientMessageId}`) ?? []).filter((m) => m.conversationId === send.conversationId);
    if (rows.length === 0) note('lost', 1, () => `${send.client} ${send.clientMessageId} acked as ${send.conversationId}#${send.seq}: no row`);
    else if (send.seq !== undefined && !rows.some((m) => m.seq === send.seq)) {
      note('lost', 1, () => `${send.client} ${send.clientMessageId} acked as #${send.seq}, stored as #${rows.map((m) => m.seq).join(',')}`);
    }
  }

  // duplicated: in the database
  for (const rows of byClientId.values()) {
    note('duplicated', rows.length - 1, () => `clientMessageId ${rows[0]!.clientMessageId} of ${rows[0]!.senderId} stored ${rows.length} times: ${rows.map((m) => key(m.conversationId, m.seq)).join(' ')}`);
  }

  // Per client and conversation: duplicates, order, unexpected.
  const received = new Map<string, Set<number>>(); // client + conversation -> seqs
  const highest = new Map<string, number>();
  for (const d of deliveries) {
    const stream = `${d.client}\u0000${d.conversationId}`;
    let seen = received.get(stream);
    if (!seen) received.set(stream, (seen = new Set()));
    if (seen.has(d.seq)) {
      note('duplicated', 1, () => `${d.client} got ${key(d.conversationId, d.seq)} again`);
      continue;
    }
    seen.add(d.seq);
    const top = highest.get(stream) ?? 0;
    if (d.seq < top) note('outOfOrder', 1, () => `${d.client} got ${key(d.conversationId, d.seq)} after #${top}`);
    else highest.set(stream, d.seq);
    const row = bySeq.get(key(d.conversationId, d.seq));
    if (!row) note('unexpected', 1, () => `${d.client} got ${key(d.conversationId, d.seq)}, which is not stored`);
    else if (row.id !== d.messageId) note('unexpected', 1, () => `${d.client} got ${key(d.conversationId, d.seq)} as message ${d.messageId}, stored as ${row.id}`);
    if (!isMember(d.conversationId, d.userId)) note('unexpected', 1, () => `${d.client} (${d.userId}) got ${key(d.conversationId, d.seq)} but is not a member`);
  }

  // missing
  let expected = 0;
  // For the examples: how far the client got, and how far its own acknowledged sends went (an
  // acknowledgement also delivers: a client whose live stream died still fills gaps up to its own sends).
  const ownTop = new Map<string, number>();
  for (const send of sends) {
    if (send.outcome !== 'acked' || send.seq === undefined) continue;
    const stream = `${send.client}\u0000${send.conversationId}`;
    ownTop.set(stream, Math.max(ownTop.get(stream) ?? 0, send.seq));
  }
  for (const e of expectations) {
    if (!isMember(e.conversationId, e.userId)) continue;
    const seen = received.get(`${e.client}\u0000${e.conversationId}`);
    const absent: number[] = [];
    for (const seq of seqsOf.get(e.conversationId) ?? []) {
      if (seq <= e.afterSeq) continue;
      expected++;
      if (!seen?.has(seq)) absent.push(seq);
    }
    absent.sort((a, b) => a - b);
    note('missing', absent.length, () => {
      const stream = `${e.client}\u0000${e.conversationId}`;
      const last = Math.max(0, ...(seqsOf.get(e.conversationId) ?? []));
      const context = `received up to #${highest.get(stream) ?? 0}, own sends up to #${ownTop.get(stream) ?? 0}, stored up to #${last}`;
      return `${e.client} never got ${e.conversationId} seqs ${absent.slice(0, 20).join(',')}${absent.length > 20 ? ',…' : ''} (${context})`;
    });
  }

  // seq gaps
  const conversations = new Set([...seqsOf.keys(), ...[...(stored.lastSeqs?.keys() ?? [])].filter(inScope)]);
  for (const conversationId of conversations) {
    const seqs = seqsOf.get(conversationId) ?? new Set<number>();
    const top = Math.max(0, ...seqs, stored.lastSeqs?.get(conversationId) ?? 0);
    const gaps: number[] = [];
    for (let seq = 1; seq <= top; seq++) if (!seqs.has(seq)) gaps.push(seq);
    note('seqGaps', gaps.length, () => `${conversationId} lacks seqs ${gaps.slice(0, 20).join(',')} (highest ${top})`);
  }

  // lostChanges: an acknowledged edit, deletion or reaction the database does not show (unless a
  // later change of the same thing, acknowledged or not, may have overtaken it).
  const changes = (history.changes ?? []).filter((c) => inScope(c.conversationId)).sort((a, b) => a.order - b.order);
  const lastBodyOp = new Map<string, ChangeRecord[]>(); // message -> its edit/delete attempts, in order
  const lastReaction = new Map<string, ChangeRecord[]>(); // message + user + reaction -> attempts, in order
  for (const c of changes) {
    if (c.op.kind === 'edit' || c.op.kind === 'delete') {
      const k = key(c.conversationId, c.seq);
      lastBodyOp.set(k, [...(lastBodyOp.get(k) ?? []), c]);
    } else {
      const k = `${key(c.conversationId, c.seq)}\u0000${c.userId}\u0000${c.op.reaction}`;
      lastReaction.set(k, [...(lastReaction.get(k) ?? []), c]);
    }
  }
  const bodyAfter = (c: ChangeRecord) => (c.op.kind === 'delete' ? { deleted: true, body: '' } : { deleted: false, body: (c.op as { body: string }).body });
  for (const [k, ops] of lastBodyOp) {
    const row = bySeq.get(k);
    const lastAcked = ops.map((c, i) => [c, i] as const).filter(([c]) => c.outcome === 'acked').at(-1);
    if (!row || !lastAcked || row.body === undefined) continue;
    // Acceptable: the state after the last acknowledged change, or after any change attempted later.
    const acceptable = ops.slice(lastAcked[1]).filter((c, i) => i === 0 || c.outcome !== 'rejected').map(bodyAfter);
    // A deletion wins over any edit (a deleted message cannot be edited).
    if (ops.slice(0, lastAcked[1] + 1).some((c) => c.op.kind === 'delete' && c.outcome === 'acked')) acceptable.push({ deleted: true, body: '' });
    if (!acceptable.some((a) => a.deleted === row.deleted && (a.deleted || a.body === row.body))) {
      note('lostChanges', 1, () => `${k}: acknowledged ${lastAcked[0].op.kind} by ${lastAcked[0].client}, stored ${row.deleted ? 'deleted' : JSON.stringify(row.body)}`);
    }
  }
  for (const [k, ops] of lastReaction) {
    const [conversationSeq, userId, reaction] = k.split('\u0000');
    const row = bySeq.get(conversationSeq!);
    const lastAcked = ops.map((c, i) => [c, i] as const).filter(([c]) => c.outcome === 'acked').at(-1);
    if (!row || !lastAcked || !row.reactedBy || row.deleted) continue;
    const acceptable = new Set(ops.slice(lastAcked[1]).filter((c, i) => i === 0 || c.outcome !== 'rejected').map((c) => c.op.kind === 'react'));
    const present = row.reactedBy.has(`${userId}\u0000${reaction}`);
    if (!acceptable.has(present)) note('lostChanges', 1, () => `${conversationSeq}: ${lastAcked[0].op.kind} ${reaction} by ${userId} acknowledged, stored ${present ? 'present' : 'absent'}`);
  }

  // stale: a client's local model disagrees with the database about a message both have.
  for (const m of (history.models ?? []).filter((x) => inScope(x.conversationId))) {
    const row = bySeq.get(key(m.conversationId, m.seq));
    if (!row || row.body === undefined) continue;
    if (row.deleted !== m.deleted || (!row.deleted && row.body !== m.body) || row.reactions !== m.reactions) {
      note('stale', 1, () => `${m.client} holds ${key(m.conversationId, m.seq)} as ${m.deleted ? 'deleted' : JSON.stringify(m.body.slice(0, 40))} [${m.reactions}], stored ${row.deleted ? 'deleted' : JSON.stringify(row.body!.slice(0, 40))} [${row.reactions}]`);
    }
  }

  return {
    counts,
    examples,
    stats: {
      sends: sends.length,
      acked: sends.filter((s) => s.outcome === 'acked').length,
      rejected: sends.filter((s) => s.outcome === 'rejected').length,
      pending: sends.filter((s) => s.outcome === 'pending').length,
      attempts: sends.reduce((sum, s) => sum + s.attempts, 0),
      stored: messages.length,
      deliveries: deliveries.length,
      expected,
      changes: changes.filter((c) => c.outcome === 'acked').length,
    },
  };
}

/** True when every count is zero. */
export function clean(report: Report): boolean {
  return KINDS.every((kind) => report.counts[kind] === 0);
}

/** A fixed-width table, one row per entry. */
export function formatTable(rows: readonly { name: string; report: Report }[]): string {
  const header = ['scenario', 'sends', 'acked', 'unacked', 'attempts', 'stored', 'deliveries', 'changes', 'lost', 'dup', 'missing', 'order', 'unexpected', 'gaps', 'lost chg', 'stale'];
  const lines = rows.map(({ name, report: { counts: c, stats: s } }) => [
    name,
    s.sends,
    s.acked,
    s.pending + s.rejected,
    s.attempts,
    s.stored,
    s.deliveries,
    s.changes,
    c.lost,
    c.duplicated,
    c.missing,
    c.outOfOrder,
    c.unexpected,
    c.seqGaps,
    c.lostChanges,
    c.stale,
  ].map(String));
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((line) => line[i]!.length)));
  const format = (cells: string[]) => cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  return [format(header), widths.map((w) => '-'.repeat(w)).join('  '), ...lines.map(format)].join('\n');
}
