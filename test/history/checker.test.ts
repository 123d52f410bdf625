import { describe, expect, it } from 'vitest';
import {
  checkHistory,
  formatTable,
  zeroCounts,
  type ChangeRecord,
  type DeliveryRecord,
  type History,
  type ModelMessage,
  type SendRecord,
  type StoredMessage,
  type StoredState,
} from './checker.js';
import { HistoryRecorder } from './recorder.js';

// Synthetic histories: one conversation "c" with alice and bob, one "d" with
// alice and carol. A clean history first; each test then breaks it one way
// and expects exactly that kind to be counted.

const C = 'c';
const D = 'd';

function row(conversationId: string, seq: number, senderId: string): StoredMessage {
  return { conversationId, seq, id: `${conversationId}-m${seq}`, senderId, clientMessageId: `${conversationId}-cm${seq}` };
}

function sent(message: StoredMessage, outcome: SendRecord['outcome'] = 'acked'): SendRecord {
  return {
    client: message.senderId,
    userId: message.senderId,
    conversationId: message.conversationId,
    clientMessageId: message.clientMessageId,
    body: 'x',
    startedAt: 0,
    outcome,
    settledAt: 1,
    seq: outcome === 'acked' ? message.seq : undefined,
    messageId: outcome === 'acked' ? message.id : undefined,
    attempts: 1,
  };
}

function delivered(client: string, message: StoredMessage): DeliveryRecord {
  return { client, userId: client, conversationId: message.conversationId, seq: message.seq, messageId: message.id, senderId: message.senderId, clientMessageId: message.clientMessageId, at: 0 };
}

function world() {
  const messages = [row(C, 1, 'alice'), row(C, 2, 'bob'), row(C, 3, 'alice'), row(D, 1, 'carol'), row(D, 2, 'alice')];
  const stored: StoredState = {
    messages,
    members: [
      { conversationId: C, userId: 'alice' },
      { conversationId: C, userId: 'bob' },
      { conversationId: D, userId: 'alice' },
      { conversationId: D, userId: 'carol' },
    ],
    lastSeqs: new Map([
      [C, 3],
      [D, 2],
    ]),
  };
  const members: Record<string, string[]> = { [C]: ['alice', 'bob'], [D]: ['alice', 'carol'] };
  const history = {
    sends: messages.map((m) => sent(m)),
    deliveries: messages.flatMap((m) => members[m.conversationId]!.map((client) => delivered(client, m))),
    expectations: Object.entries(members).flatMap(([conversationId, users]) => users.map((userId) => ({ client: userId, userId, conversationId, afterSeq: 0 }))),
  } satisfies History;
  return { history, stored, messages };
}

const only = (counts: Partial<ReturnType<typeof zeroCounts>>) => ({ ...zeroCounts(), ...counts });

describe('the history checker', () => {
  it('counts nothing on a clean history', () => {
    const { history, stored } = world();
    const report = checkHistory(history, stored);
    expect(report.counts).toEqual(zeroCounts());
    expect(report.stats).toMatchObject({ sends: 5, acked: 5, stored: 5, deliveries: 10, expected: 10 });
  });

  it('counts an acknowledged send that is not stored as lost, and one stored under another seq', () => {
    const { history, stored } = world();
    const ghost = sent(row(C, 4, 'bob'));
    const moved = { ...history.sends[0]!, seq: 7 };
    const report = checkHistory({ ...history, sends: [moved, ...history.sends.slice(1), ghost] }, stored);
    expect(report.counts).toEqual(only({ lost: 2 }));
    expect(report.examples.lost.join('\n')).toContain(ghost.clientMessageId);
  });

  it('does not count a send that was never acknowledged and never stored', () => {
    const { history, stored } = world();
    const unacked = sent(row(C, 4, 'bob'), 'pending');
    const report = checkHistory({ ...history, sends: [...history.sends, unacked] }, stored);
    expect(report.counts).toEqual(zeroCounts());
    expect(report.stats.pending).toBe(1);
  });

  it('counts a clientMessageId stored twice, and a seq delivered twice to one client, as duplicated', () => {
    const { history, stored, messages } = world();
    // The same clientMessageId of alice stored again as seq 4.
    const again = { ...row(C, 4, 'alice'), clientMessageId: messages[0]!.clientMessageId };
    const withCopy = { ...stored, messages: [...stored.messages, again], lastSeqs: new Map([[C, 4], [D, 2]]) };
    const deliveries = [...history.deliveries, delivered('alice', again), delivered('bob', again)];
    expect(checkHistory({ ...history, deliveries }, withCopy).counts).toEqual(only({ duplicated: 1 }));

    const twice = [...history.deliveries, delivered('bob', messages[1]!)];
    expect(checkHistory({ ...history, deliveries: twice }, stored).counts).toEqual(only({ duplicated: 1 }));
  });

  it('counts a stored message never delivered to a subscribed member as missing, per client', () => {
    const { history, stored } = world();
    const deliveries = history.deliveries.filter((d) => !(d.conversationId === C && d.seq === 3));
    const report = checkHistory({ ...history, deliveries }, stored);
    expect(report.counts).toEqual(only({ missing: 2 }));
    expect(report.examples.missing.join('\n')).toContain('seqs 3');
  });

  it('does not expect what came before a client subscribed, nor anything from a client with no expectation', () => {
    const { history, stored } = world();
    const deliveries = history.deliveries.filter((d) => !(d.client === 'bob' && d.seq === 1) && d.client !== 'carol');
    const expectations = history.expectations.filter((e) => e.client !== 'carol').map((e) => (e.client === 'bob' ? { ...e, afterSeq: 1 } : e));
    expect(checkHistory({ ...history, deliveries, expectations }, stored).counts).toEqual(zeroCounts());
  });

  it('counts a seq received after a higher one of the same conversation as out of order', () => {
    const { history, stored } = world();
    const bob = history.deliveries.filter((d) => d.client === 'bob');
    const swapped = [...history.deliveries.filter((d) => d.client !== 'bob'), bob[0]!, bob[2]!, bob[1]!];
    expect(checkHistory({ ...history, deliveries: swapped }, stored).counts).toEqual(only({ outOfOrder: 1 }));
    // Interleaving conversations is fine: order is per conversation.
    const alice = history.deliveries.filter((d) => d.client === 'alice');
    const interleaved = [...history.deliveries.filter((d) => d.client !== 'alice'), alice[3]!, alice[0]!, alice[4]!, alice[1]!, alice[2]!];
    expect(checkHistory({ ...history, deliveries: interleaved }, stored).counts).toEqual(zeroCounts());
  });

  it('counts a delivery that is not stored, does not match its row, or reaches a non-member as unexpected', () => {
    const { history, stored, messages } = world();
    const phantom = delivered('bob', row(C, 9, 'alice'));
    const wrongRow = { ...delivered('bob', messages[2]!), messageId: 'another' };
    const intruder = delivered('carol', messages[0]!);
    const deliveries = [...history.deliveries.filter((d) => !(d.client === 'bob' && d.seq === 3 && d.conversationId === C)), wrongRow, phantom, intruder];
    expect(checkHistory({ ...history, deliveries }, stored).counts).toEqual(only({ unexpected: 3 }));
  });

  it('counts seqs absent from the database below the highest one (or last_seq) as gaps', () => {
    const { history, stored } = world();
    const holed = { ...stored, messages: stored.messages.filter((m) => !(m.conversationId === C && m.seq === 2)) };
    const deliveries = history.deliveries.filter((d) => !(d.conversationId === C && d.seq === 2));
    const sends = history.sends.filter((s) => !(s.conversationId === C && s.seq === 2));
    expect(checkHistory({ ...history, deliveries, sends }, holed).counts).toEqual(only({ seqGaps: 1 }));
    const behind = { ...stored, lastSeqs: new Map([[C, 5], [D, 2]]) };
    expect(checkHistory(history, behind).counts).toEqual(only({ seqGaps: 2 }));
  });

  it('checks a subset of conversations on its own', () => {
    const { history, stored } = world();
    const deliveries = history.deliveries.filter((d) => !(d.conversationId === D && d.seq === 2 && d.client === 'carol'));
    expect(checkHistory({ ...history, deliveries }, stored, { conversations: new Set([C]) }).counts).toEqual(zeroCounts());
    expect(checkHistory({ ...history, deliveries }, stored, { conversations: new Set([D]) }).counts).toEqual(only({ missing: 1 }));
  });

  it('prints a table with a row per scenario', () => {
    const { history, stored } = world();
    const table = formatTable([{ name: 'clean', report: checkHistory(history, stored) }]);
    expect(table.split('\n')).toHaveLength(3);
    expect(table).toMatch(/^scenario\s+sends/);
  });
});

describe('the history recorder', () => {
  it('records sends (acknowledged, rejected, still pending), their HTTP attempts and deliveries', async () => {
    const recorder = new HistoryRecorder();
    const listeners: ((message: any) => void)[] = [];
    let answer: (() => void) | undefined;
    const chat = {
      onMessage: (listener: (message: any) => void) => {
        listeners.push(listener);
        return () => {};
      },
      async send(conversationId: string, body: string, options?: { clientMessageId?: string }) {
        // Two HTTP attempts through the recorded fetch, as a retry would make.
        const fetch = recorder.fetchFor(async () => new Response('{}'));
        for (let i = 0; i < 2; i++) await fetch('http://x', { method: 'POST', body: JSON.stringify({ variables: { clientMessageId: options?.clientMessageId } }) });
        if (body === 'bad') throw Object.assign(new Error('no'), { code: 'FORBIDDEN' });
        if (body === 'slow') await new Promise<void>((resolve) => (answer = resolve));
        return { id: 'm1', conversationId, seq: 1, body, clientMessageId: options!.clientMessageId!, createdAt: '', sender: { id: 'alice', name: 'alice' } };
      },
    };
    recorder.attach('alice-1', 'alice', chat as never, { c: 0 });
    const ok = await recorder.send('alice-1', 'alice', chat as never, 'c', 'hello');
    const bad = await recorder.send('alice-1', 'alice', chat as never, 'c', 'bad');
    const slow = recorder.send('alice-1', 'alice', chat as never, 'c', 'slow');
    await new Promise((resolve) => setTimeout(resolve, 10));
    listeners[0]!({ id: 'm1', conversationId: 'c', seq: 1, clientMessageId: ok.clientMessageId, sender: { id: 'alice' } });

    expect(ok).toMatchObject({ outcome: 'acked', seq: 1, messageId: 'm1', attempts: 2 });
    expect(bad).toMatchObject({ outcome: 'rejected', error: 'FORBIDDEN', attempts: 2 });
    expect(recorder.pending().map((s) => s.body)).toEqual(['slow']);
    expect(recorder.snapshot().sends.map((s) => s.outcome)).toEqual(['acked', 'rejected', 'pending']);
    expect(recorder.deliveries).toEqual([expect.objectContaining({ client: 'alice-1', conversationId: 'c', seq: 1, messageId: 'm1', senderId: 'alice' })]);
    expect(recorder.expectations).toEqual([{ client: 'alice-1', userId: 'alice', conversationId: 'c', afterSeq: 0 }]);
    answer!();
    expect((await slow).outcome).toBe('acked');
  });
});

describe('the event-log checks', () => {
  /** The world with message c#1 edited by alice and reacted to by bob, everywhere in agreement. */
  function changed() {
    const { history, stored } = world();
    const messages = stored.messages.map((m) =>
      m.conversationId === C && m.seq === 1
        ? { ...m, body: 'edited', deleted: false, reactions: '👍:1', reactedBy: new Set(['bob\u0000👍']) }
        : { ...m, body: 'x', deleted: false, reactions: '', reactedBy: new Set<string>() },
    );
    const changes: ChangeRecord[] = [
      { client: 'alice', userId: 'alice', conversationId: C, seq: 1, op: { kind: 'edit', body: 'first edit' }, order: 1, outcome: 'acked' },
      { client: 'alice', userId: 'alice', conversationId: C, seq: 1, op: { kind: 'edit', body: 'edited' }, order: 2, outcome: 'acked' },
      { client: 'bob', userId: 'bob', conversationId: C, seq: 1, op: { kind: 'react', reaction: '👍' }, order: 3, outcome: 'acked' },
    ];
    const models: ModelMessage[] = messages.flatMap((m) =>
      (m.conversationId === C ? ['alice', 'bob'] : ['alice', 'carol']).map((client) => ({
        client,
        conversationId: m.conversationId,
        seq: m.seq,
        body: m.body!,
        deleted: m.deleted!,
        reactions: m.reactions!,
      })),
    );
    return { history: { ...history, changes, models }, stored: { ...stored, messages } };
  }

  it('counts nothing when the database and every model agree with the acknowledged changes', () => {
    const { history, stored } = changed();
    expect(checkHistory(history, stored).counts).toEqual(only({}));
  });

  it('counts an acknowledged edit the database does not show as a lost change', () => {
    const { history, stored } = changed();
    const messages = stored.messages.map((m) => (m.conversationId === C && m.seq === 1 ? { ...m, body: 'first edit' } : m));
    const models = history.models.map((m) => (m.conversationId === C && m.seq === 1 ? { ...m, body: 'first edit' } : m));
    expect(checkHistory({ ...history, models }, { ...stored, messages }).counts).toEqual(only({ lostChanges: 1 }));
  });

  it('accepts a later change that was never acknowledged having happened, or not', () => {
    const { history, stored } = changed();
    const pending: ChangeRecord = { client: 'alice', userId: 'alice', conversationId: C, seq: 1, op: { kind: 'delete' }, order: 4, outcome: 'pending' };
    expect(checkHistory({ ...history, changes: [...history.changes, pending] }, stored).counts).toEqual(only({}));
    const messages = stored.messages.map((m) => (m.conversationId === C && m.seq === 1 ? { ...m, deleted: true, body: '', reactions: '', reactedBy: new Set<string>() } : m));
    const models = history.models.map((m) => (m.conversationId === C && m.seq === 1 ? { ...m, deleted: true, body: '', reactions: '' } : m));
    expect(checkHistory({ ...history, changes: [...history.changes, pending], models }, { ...stored, messages }).counts).toEqual(only({}));
  });

  it('counts an acknowledged reaction the database lacks as a lost change', () => {
    const { history, stored } = changed();
    const messages = stored.messages.map((m) => (m.conversationId === C && m.seq === 1 ? { ...m, reactions: '', reactedBy: new Set<string>() } : m));
    const models = history.models.map((m) => (m.conversationId === C && m.seq === 1 ? { ...m, reactions: '' } : m));
    expect(checkHistory({ ...history, models }, { ...stored, messages }).counts).toEqual(only({ lostChanges: 1 }));
  });

  it('counts each client whose model missed an edit, a deletion or a reaction as stale', () => {
    const { history, stored } = changed();
    const models = history.models.map((m) =>
      m.client === 'bob' && m.conversationId === C && m.seq === 1 ? { ...m, body: 'first edit' } : m.client === 'carol' && m.seq === 2 ? { ...m, reactions: '👀:1' } : m,
    );
    expect(checkHistory({ ...history, models }, stored).counts).toEqual(only({ stale: 2 }));
  });
});
