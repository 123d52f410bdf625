import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { signToken } from '../src/auth.js';
import { seedGroups } from './database.js';
import { startChatServer } from './processes.js';

/**
 * Catch-up after 10,000 changes (issue 9): a member who was away while a
 * conversation saw 5,000 messages, 3,000 edits and 2,000 reactions comes back
 * and pages `eventsSince` from cursor 0 over HTTP until it holds every
 * message in its current state. Baseline: a raw SELECT, from the same
 * process, of the rows it ends up holding (the messages with their reaction
 * counts). Both are timed end to end, transfer and parsing included.
 */
export async function catchUpScenario(databaseUrl: string, secret: string, options: { messages: number; edits: number; reactions: number; rounds: number }) {
  const { messages, edits, reactions, rounds } = options;
  console.log(`\ncatch-up after ${messages + edits + reactions} changes (${messages} messages, ${edits} edits, ${reactions} reactions)`);
  const { ids, members } = await seedGroups(databaseUrl, 'cu', 1, 3);
  const conversation = ids[0]!;
  const [alice, bob, carol] = members[0]!;

  // The changes, through the same SQL functions the API calls (setup is not what we measure).
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  const t0 = performance.now();
  for (let i = 1; i <= messages; i++) {
    await db.query('SELECT * FROM chat_send_message($1, $2, $3, $4, $5, now(), 100, NULL, NULL)', [
      conversation,
      i % 2 ? alice : carol,
      randomUUID(),
      `message ${i} with a body of ordinary length for a chat, about sixty characters`,
      `cu-${i}`,
    ]);
  }
  for (let i = 1; i <= edits; i++) {
    const seq = 1 + ((i * 7919) % messages);
    const sender = seq % 2 ? alice : carol;
    await db.query('SELECT * FROM chat_edit_message($1, $2, $3, $4, now(), 100, NULL, NULL)', [conversation, seq, sender, `edited ${i}: message ${seq}, revised once more`]);
  }
  const emoji = ['👍', '❤️', '😂', '🎉', '👀'];
  for (let i = 1; i <= reactions; i++) {
    const seq = 1 + ((i * 104729) % messages);
    await db.query('SELECT * FROM chat_react($1, $2, $3, $4, true, now(), 20, 100, NULL, NULL)', [conversation, seq, i % 2 ? alice : carol, emoji[i % emoji.length]]);
  }
  console.log(`  seeded in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  const chat = await startChatServer({ DATABASE_URL: databaseUrl, JWT_SECRET: secret });
  const token = await signToken(secret, bob!, { name: bob });
  const url = `http://127.0.0.1:${chat.port}/graphql`;
  const query = `query($c: ID!, $a: Int!) { eventsSince(conversationId: $c, afterEventSeq: $a, first: 1000) {
    events { ... on MessageEvent { eventSeq message { seq body editedAt deleted reactions { reaction count } } } }
    nextAfterEventSeq hasMore } }`;

  async function viaApi(): Promise<{ ms: number; held: number }> {
    const started = performance.now();
    const held = new Map<number, unknown>();
    let cursor = 0;
    for (;;) {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ query, variables: { c: conversation, a: cursor } }),
      });
      const page = ((await response.json()) as { data: { eventsSince: { events: { message?: { seq: number } }[]; nextAfterEventSeq: number; hasMore: boolean } } }).data.eventsSince;
      for (const event of page.events) if (event.message) held.set(event.message.seq, event.message);
      cursor = page.nextAfterEventSeq;
      if (!page.hasMore) break;
    }
    return { ms: performance.now() - started, held: held.size };
  }

  async function raw(): Promise<{ ms: number; held: number }> {
    const started = performance.now();
    const result = await db.query(
      `SELECT m.seq, m.body, m.edited_at, m.deleted_at,
              (SELECT json_agg(json_build_object('reaction', r.reaction, 'count', r.n))
                 FROM (SELECT reaction, count(*) AS n FROM message_reactions x
                        WHERE x.conversation_id = m.conversation_id AND x.message_seq = m.seq GROUP BY reaction) r) AS reactions
         FROM messages m WHERE m.conversation_id = $1 ORDER BY m.seq`,
      [conversation],
    );
    return { ms: performance.now() - started, held: result.rows.length };
  }

  await viaApi(); // warm up (plans, JIT)
  await raw();
  const api: number[] = [];
  const baseline: number[] = [];
  let held = 0;
  for (let i = 0; i < rounds; i++) {
    const a = await viaApi();
    const b = await raw();
    api.push(a.ms);
    baseline.push(b.ms);
    held = a.held;
    if (a.held !== b.held) throw new Error(`catch-up holds ${a.held} messages, the table has ${b.held}`);
  }
  await db.end();
  await chat.stop();
  const median = (values: number[]) => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)]!;
  const apiMs = median(api);
  const rawMs = median(baseline);
  return {
    changes: messages + edits + reactions,
    messagesHeld: held,
    catchUpMs: Number(apiMs.toFixed(1)),
    rawSelectMs: Number(rawMs.toFixed(1)),
    ratio: Number((apiMs / rawMs).toFixed(2)),
  };
}
