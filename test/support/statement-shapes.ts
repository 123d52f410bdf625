import type { TableDistribution } from '../../src/db/distribution.js';

/**
 * Reads a SQL statement the way Citus's router planner decides whether it can
 * send it to a single shard: every distributed table it touches must be pinned
 * to one value of its distribution column. Pragmatic, not a SQL parser: it
 * understands what this server sends (Prisma 7's query compiler, which
 * qualifies every column as "schema"."table"."column", and the few
 * hand-written $queryRaw statements in src/chat, which use bare names) and
 * calls anything else multi-shard, so that a human looks at it.
 *
 * A table reference is pinned when its part of the statement has
 * `<distribution column> = $n` as a conjunct (no OR above it), or, for an
 * INSERT, when it writes one row or selects a parameter into that column.
 * What cannot be seen from the text: that two pins of one statement carry the
 * same value (Citus needs that for one shard; our statements pass the same id
 * several times), and the values of a multi-row INSERT.
 *
 * Pinned is not enough for the router planner when the statement writes:
 * Citus refuses VOLATILE functions in writes to distributed tables ("functions
 * used in UPDATE queries on distributed tables must not be VOLATILE") and in
 * CTEs, and does not route an INSERT inside WITH ("Router planner doesn't
 * support INSERT common table expressions"; citus
 * src/backend/distributed/planner/multi_router_planner.c), and takes row
 * locks (FOR UPDATE) in single-shard queries only. A single-shard statement
 * with such an issue is 'not-router': it fails on Citus, or is planned CTE by
 * CTE.
 */
export type Routing = 'control' | 'local' | 'router' | 'not-router' | 'multi-shard';

export interface Classified {
  /** The statement with parameters numbered away and repeated lists collapsed: one row per call site. */
  shape: string;
  routing: Routing;
  /** The distributed tables it touches, in order of appearance. */
  tables: string[];
  /** The co-location groups of those tables. */
  groups: string[];
  /** Why it is not a single-shard statement (empty when it is). */
  reasons: string[];
  /** Why the router planner would refuse it although it is single-shard (empty when it would not). */
  plannerIssues: string[];
}

const CONTROL = /^(BEGIN|COMMIT|ROLLBACK|START TRANSACTION|SAVEPOINT|RELEASE|SET|RESET|SHOW|DEALLOCATE|DISCARD)\b/i;
const PARAM = String.raw`\$\d+(?:::[\w"]+)?`;
const GROUP = String.raw`\((?:[^()]|\((?:[^()]|\([^()]*\))*\))*\)`;

/** Whitespace collapsed, `$12` → `$`, `IN ($1,$2)` → `IN ($…)`, repeated `(…), (…)` / `(…) OR (…)` → one and `…`. */
export function shapeOf(sql: string): string {
  let shape = sql.replace(/\s+/g, ' ').trim().replace(/\$\d+/g, '$');
  shape = shape.replace(/IN \(\$(?:, ?\$)*\)/g, 'IN ($…)');
  const repeated = new RegExp(`(${GROUP})((?:, | OR )\\1)+`, 'g');
  return shape.replace(repeated, (_all, first: string, last: string) => `${first}${last.startsWith(' OR') ? ' OR …' : ', …'}`);
}

interface Mention {
  table: string;
  keyword: string;
  index: number;
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * `volatileFunctions`: names of VOLATILE functions (from pg_proc), to find them
 * in statements that write.
 */
export function classify(
  sql: string,
  distribution: readonly TableDistribution[],
  volatileFunctions: ReadonlySet<string> = new Set(),
): Classified {
  const text = sql.replace(/\s+/g, ' ').trim();
  const shape = shapeOf(sql);
  if (CONTROL.test(text)) return { shape, routing: 'control', tables: [], groups: [], reasons: [], plannerIssues: [] };

  const byTable = new Map(distribution.map((entry) => [entry.table, entry]));
  const mentions: Mention[] = [];
  for (const match of text.matchAll(/\b(FROM|JOIN|UPDATE|INTO)\s+(?:"[\w$]+"\.|[\w$]+\.)?"?([A-Za-z_][\w$]*)"?(?![\w".])/gi)) {
    if (byTable.has(match[2]!)) mentions.push({ keyword: match[1]!.toUpperCase(), table: match[2]!, index: match.index! });
  }
  const reasons: string[] = [];

  // A distributed table named anywhere else (a comma join, a function argument) is not understood: flag it.
  for (const table of byTable.keys()) {
    const named = [...text.matchAll(new RegExp(`(?<![\\w"])(?:"[\\w$]+"\\.|[\\w$]+\\.)?"?${escape(table)}"?(?![\\w"]|\\.)`, 'g'))].length;
    const understood = mentions.filter((m) => m.table === table).length;
    if (named > understood) reasons.push(`${table} is referenced outside FROM/JOIN/UPDATE/INTO`);
  }

  const tables = [...new Set(mentions.map((m) => m.table))];
  const groups = [...new Set(tables.map((t) => byTable.get(t)!.colocateWith))];
  if (tables.length === 0 && reasons.length === 0) return { shape, routing: 'local', tables, groups, reasons, plannerIssues: [] };
  if (groups.length > 1) reasons.push(`touches tables of ${groups.length} co-location groups (${groups.join(', ')})`);

  mentions.forEach((mention, i) => {
    const end = mentions[i + 1]?.index ?? text.length;
    const column = byTable.get(mention.table)!.column;
    const why = mention.keyword === 'INTO' ? insertPin(text, mention, column) : filterPin(text, mention.index, end, mention.table, column);
    if (why) reasons.push(`${mention.table}: ${why}`);
  });

  const writes = (m: Mention) => m.keyword === 'INTO' || m.keyword === 'UPDATE' || (m.keyword === 'FROM' && /\bDELETE\s+$/i.test(text.slice(0, m.index)));
  const written = [...new Set(mentions.filter(writes).map((m) => m.table))];
  const plannerIssues: string[] = [];
  if (written.length > 0) {
    const called = new Set([...text.matchAll(/\b([A-Za-z_][\w$]*)\s*\(/g)].map((m) => m[1]!.toLowerCase()));
    for (const name of called) {
      if (volatileFunctions.has(name)) plannerIssues.push(`VOLATILE ${name}() in a statement that writes ${written.join(', ')}`);
    }
  }
  if (/\bAS\s*(?:NOT\s+)?(?:MATERIALIZED\s*)?\(\s*INSERT\b/i.test(text)) plannerIssues.push('INSERT inside WITH');
  if (reasons.length > 0 && /\bFOR (?:NO KEY )?(?:UPDATE|SHARE)\b|\bFOR KEY SHARE\b/i.test(text)) plannerIssues.push('row locks (FOR UPDATE) on several shards');

  const routing: Routing = reasons.length > 0 ? 'multi-shard' : plannerIssues.length > 0 ? 'not-router' : 'router';
  return { shape, routing, tables, groups, reasons, plannerIssues };
}

/** Null when this reference is pinned to one value of `column`, else why not. */
function filterPin(text: string, start: number, end: number, table: string, column: string): string | null {
  const segment = text.slice(start, end);
  // Prisma's "schema"."table"."column", a bare column, or one qualified by a table alias (m.conversation_id).
  const col = `(?:"[\\w$]+"\\."${escape(table)}"\\."${escape(column)}"|(?<![\\w."])(?:\\w+\\.)?"?${escape(column)}"?)`;
  for (const match of segment.matchAll(new RegExp(`${col}\\s*=\\s*${PARAM}`, 'g'))) {
    if (isConjunct(text, start, end, start + match.index!)) return null;
  }
  // Correlated on the distribution column of another (co-located) reference,
  // itself pinned: `x.conversation_id = m.conversation_id` in a subquery on
  // messages m WHERE m.conversation_id = $1. Citus routes the whole statement
  // to that one shard (a co-located join on the distribution column).
  for (const match of segment.matchAll(new RegExp(`${col}\\s*=\\s*"?\\w+"?\\."?${escape(column)}"?`, 'g'))) {
    if (isConjunct(text, start, end, start + match.index!)) return null;
  }
  if (new RegExp(`${col}\\s+IN\\s*\\(|${col}\\s*=\\s*ANY\\s*\\(`).test(segment)) return `${column} IN (list)`;
  if (new RegExp(`${col}\\s*=\\s*${PARAM}`).test(segment)) return `${column} = $n only under an OR`;
  return `no ${column} = $n filter`;
}

/** True when no OR sits at the level of `at` or of any parenthesis around it, within [start, end). */
function isConjunct(text: string, start: number, end: number, at: number): boolean {
  const depth: number[] = [];
  let d = 0;
  for (let i = 0; i < end; i++) {
    if (text[i] === ')') d--;
    depth[i] = d;
    if (text[i] === '(') d++;
  }
  const base = depth[start]!;
  for (let level = depth[at]!; level >= base; level--) {
    let left = at;
    while (left > start && !(depth[left - 1]! < level)) left--;
    let right = at;
    while (right < end && !(depth[right]! < level)) right++;
    for (const or of text.slice(left, right).matchAll(/ OR /gi)) {
      if (depth[left + or.index!] === level) return false;
    }
  }
  return true;
}

/** Null when this INSERT writes one row, or selects a parameter into `column`; else why not. */
function insertPin(text: string, mention: Mention, column: string): string | null {
  const head = /^INTO\s+\S+\s*\(([^)]*)\)\s*(VALUES|SELECT)\s*/i.exec(text.slice(mention.index));
  if (!head) return 'INSERT without a column list';
  const columns = head[1]!.split(',').map((c) => c.trim().replace(/"/g, ''));
  const at = columns.indexOf(column);
  if (at < 0) return `INSERT without ${column}`;
  const rest = text.slice(mention.index + head[0].length);
  if (head[2]!.toUpperCase() === 'VALUES') {
    const rows = countTuples(rest);
    return rows === 1 ? null : `multi-row INSERT (${rows} rows, each routed by its ${column})`;
  }
  const selected = splitTopLevel(rest.slice(0, topLevelIndex(rest, ' FROM ')))[at]?.trim() ?? '';
  return new RegExp(`^${PARAM}$`).test(selected) ? null : `INSERT … SELECT computes ${column}`;
}

function countTuples(text: string): number {
  let rows = 0;
  let i = 0;
  for (;;) {
    while (text[i] === ' ') i++;
    if (text[i] !== '(') return rows;
    let d = 0;
    do {
      if (text[i] === '(') d++;
      else if (text[i] === ')') d--;
      i++;
    } while (d > 0 && i < text.length);
    rows++;
    while (text[i] === ' ') i++;
    if (text[i] !== ',') return rows;
    i++;
  }
}

function topLevelIndex(text: string, needle: string): number {
  let d = 0;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '(') d++;
    else if (text[i] === ')') d--;
    else if (d === 0 && text.startsWith(needle, i)) return i;
  }
  return text.length;
}

function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let d = 0;
  let from = 0;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '(') d++;
    else if (text[i] === ')') d--;
    else if (d === 0 && text[i] === ',') {
      parts.push(text.slice(from, i));
      from = i + 1;
    }
  }
  parts.push(text.slice(from));
  return parts;
}
