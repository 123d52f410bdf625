/**
 * PostgreSQL's own parse trees, read back as data: the text form PostgreSQL
 * stores for views and rules (pg_rewrite.ev_action, written by nodeToString).
 * test/support/citus-write-rules.ts lets the real parser resolve every cast,
 * operator and function of a statement this way, then applies Citus's rules to
 * the tree instead of guessing from the SQL text.
 *
 * `{FUNCEXPR :funcid 870 :args (…)}` becomes
 * `{ node: 'FUNCEXPR', funcid: '870', args: [...] }`; lists become arrays,
 * `<>` null, everything else the token's text.
 */
export type TreeValue = TreeNode | TreeValue[] | string | null;
export interface TreeNode {
  node: string;
  [field: string]: TreeValue;
}

export function parseNodeString(text: string): TreeValue {
  const tokens = tokenize(text);
  let at = 0;
  const value = (): TreeValue => {
    const token = tokens[at++];
    if (token === undefined) throw new Error('node string ended early');
    if (token === '{') {
      const node: TreeNode = { node: tokens[at++]! };
      while (tokens[at] !== '}') {
        const field = tokens[at++]!;
        if (!field.startsWith(':')) throw new Error(`expected a field name in ${node.node}, got ${field}`);
        node[field.slice(1)] = tokens[at] === '}' || tokens[at]!.startsWith(':') ? null : value();
        // A Datum is written as its length and then its bytes in brackets.
        if (tokens[at]?.startsWith('[')) at++;
      }
      at++;
      return node;
    }
    if (token === '(') {
      const list: TreeValue[] = [];
      while (tokens[at] !== ')') list.push(value());
      at++;
      return list;
    }
    return token === '<>' ? null : token;
  };
  const result = value();
  if (at !== tokens.length) throw new Error('trailing text after the node string');
  return result;
}

function tokenize(text: string): string[] {
  const tokens: string[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '{' || c === '}' || c === '(' || c === ')') {
      tokens.push(c);
      i++;
    } else if (c === '[') {
      const end = text.indexOf(']', i);
      tokens.push(text.slice(i, end + 1));
      i = end + 1;
    } else if (c === '"') {
      let j = i + 1;
      let out = '';
      while (j < text.length && text[j] !== '"') {
        if (text[j] === '\\') j++;
        out += text[j++];
      }
      tokens.push(out);
      i = j + 1;
    } else {
      let out = '';
      while (i < text.length && !/[\s{}()]/.test(text[i]!)) {
        if (text[i] === '\\') i++;
        out += text[i++];
      }
      tokens.push(out);
    }
  }
  return tokens;
}

export function isNode(value: TreeValue | undefined, type?: string): value is TreeNode {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && (type === undefined || value.node === type);
}

/** Every node under `value` (itself included), depth first. */
export function* walk(value: TreeValue | undefined): Generator<TreeNode> {
  if (Array.isArray(value)) {
    for (const item of value) yield* walk(item);
  } else if (isNode(value)) {
    yield value;
    for (const [key, child] of Object.entries(value)) if (key !== 'node') yield* walk(child);
  }
}

/** The direct child nodes of a node (through lists), for walkers that decide whether to descend. */
export function children(node: TreeNode): TreeNode[] {
  const out: TreeNode[] = [];
  const collect = (value: TreeValue) => {
    if (Array.isArray(value)) value.forEach(collect);
    else if (isNode(value)) out.push(value);
  };
  for (const [key, child] of Object.entries(node)) if (key !== 'node') collect(child);
  return out;
}
