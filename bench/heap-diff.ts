import WebSocket from 'ws';

/** Takes a heap snapshot through the inspector and sums self sizes by constructor name. */
export async function heapByConstructor(inspectPort: number): Promise<Map<string, { count: number; size: number }>> {
  const targets = (await fetch(`http://127.0.0.1:${inspectPort}/json/list`).then((r) => r.json())) as { webSocketDebuggerUrl: string }[];
  const socket = new WebSocket(targets[0]!.webSocketDebuggerUrl, { maxPayload: 1024 ** 3 });
  await new Promise((resolve) => socket.once('open', resolve));
  const chunks: string[] = [];
  await new Promise<void>((resolve) => {
    socket.on('message', (data) => {
      const message = JSON.parse(String(data));
      if (message.method === 'HeapProfiler.addHeapSnapshotChunk') chunks.push(message.params.chunk);
      if (message.id === 2) resolve();
    });
    socket.send(JSON.stringify({ id: 1, method: 'HeapProfiler.collectGarbage' }));
    socket.send(JSON.stringify({ id: 2, method: 'HeapProfiler.takeHeapSnapshot', params: { reportProgress: false } }));
  });
  socket.close();
  const snapshot = JSON.parse(chunks.join(''));
  const fields: string[] = snapshot.snapshot.meta.node_fields;
  const types: string[] = snapshot.snapshot.meta.node_types[0];
  const stride = fields.length;
  const [ti, ni, si] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f));
  const totals = new Map<string, { count: number; size: number }>();
  const nodes: number[] = snapshot.nodes;
  for (let i = 0; i < nodes.length; i += stride) {
    const type = types[nodes[i + ti!]!]!;
    const name = type === 'object' || type === 'closure' ? `${type}:${snapshot.strings[nodes[i + ni!]!]}` : type;
    const entry = totals.get(name) ?? { count: 0, size: 0 };
    entry.count++;
    entry.size += nodes[i + si!]!;
    totals.set(name, entry);
  }
  return totals;
}

export function printDiff(before: Map<string, { count: number; size: number }>, after: Map<string, { count: number; size: number }>, per: number, top = 40) {
  const rows = [...after.entries()].map(([name, a]) => {
    const b = before.get(name) ?? { count: 0, size: 0 };
    return { name, count: (a.count - b.count) / per, bytes: (a.size - b.size) / per };
  });
  rows.sort((x, y) => y.bytes - x.bytes);
  let total = 0;
  for (const row of rows) total += row.bytes;
  console.log(`  total ${total.toFixed(0)} B per unit`);
  for (const row of rows.slice(0, top)) console.log(`  ${row.bytes.toFixed(0).padStart(7)} B  ${row.count.toFixed(2).padStart(6)}x  ${row.name.slice(0, 90)}`);
}
