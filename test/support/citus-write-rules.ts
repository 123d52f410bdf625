import type pg from 'pg';
import type { TableDistribution } from '../../src/db/distribution.js';
import { children, isNode, parseNodeString, walk, type TreeNode, type TreeValue } from './query-tree.js';

/**
 * What Citus refuses in a write (INSERT, UPDATE, DELETE) to a distributed
 * table, decided on PostgreSQL's own parse tree of the statement, so that every
 * implicit cast, operator and function is seen as PostgreSQL resolved it: a
 * `"kind"::text` in RETURNING is an I/O conversion through enum_out, which is
 * STABLE, and that is what Citus refuses there.
 *
 * The rules are Citus 13.2's (src/backend/distributed/planner/
 * multi_router_planner.c: ModifyPartialQuerySupported,
 * TargetlistAndFunctionsSupported, ErrorIfOnConflictNotSupported,
 * MasterIrreducibleExpression, SingleShardUpdateDeleteSupported), each
 * reported with Citus's own message:
 *
 * - RETURNING: no function that is not IMMUTABLE (contain_mutable_functions);
 * - UPDATE and DELETE: no VOLATILE function anywhere; in SET and WHERE no
 *   STABLE function given a column (Citus evaluates STABLE functions of
 *   constants and parameters on the coordinator, it cannot do that per row),
 *   and no CASE / COALESCE holding a non-IMMUTABLE function;
 * - UPDATE (and ON CONFLICT DO UPDATE) may not change the distribution column;
 * - ON CONFLICT DO UPDATE SET: expressions other than a plain column must be
 *   IMMUTABLE, and so must the ON CONFLICT WHERE clauses;
 * - INSERT: no subquery (other than INSERT … SELECT), no WITH; a data-modifying
 *   WITH is refused when it inserts; no VOLATILE function inside a WITH;
 * - no composite-field assignment, no WHERE CURRENT OF.
 *
 * How the tree is obtained, without running anything: the statement is
 * prepared (PostgreSQL infers its parameters' types), its parameters are
 * replaced by typed NULL constants (a parameter is, for Citus, a value it
 * evaluates on the coordinator: a constant, never a column), and it becomes
 * the action of a rule on a temporary view; PostgreSQL stores the parsed
 * action in pg_rewrite. Its RETURNING list is parsed the same way, as the
 * target list of a view over the table. Everything is rolled back.
 */
export interface WriteCheck {
  /** Citus's refusals, one sentence each (empty: Citus accepts the statement). */
  refusals: string[];
}

const COMMAND: Record<string, 'SELECT' | 'UPDATE' | 'INSERT' | 'DELETE'> = { '1': 'SELECT', '2': 'UPDATE', '3': 'INSERT', '4': 'DELETE' };

/** Node types whose own function calls contain_mutable_functions (check_functions_in_node) looks at. */
const CALLS = new Set(['FUNCEXPR', 'OPEXPR', 'DISTINCTEXPR', 'NULLIFEXPR', 'SCALARARRAYOPEXPR', 'COERCEVIAIO', 'ROWCOMPAREEXPR', 'AGGREF', 'WINDOWFUNC']);

type Volatility = 'i' | 's' | 'v';
const rank = (v: Volatility) => ({ i: 0, s: 1, v: 2 })[v];
const max = (a: Volatility, b: Volatility): Volatility => (rank(a) >= rank(b) ? a : b);

export class CitusWriteRules {
  private readonly procs = new Map<string, Volatility>();
  private readonly operators = new Map<string, string>();
  private readonly types = new Map<string, { input: string; output: string }>();
  private counter = 0;

  constructor(
    private readonly client: pg.ClientBase,
    private readonly distribution: readonly TableDistribution[],
  ) {}

  /** Null for statements that write no distributed table (they are not this check's business). */
  async check(sql: string): Promise<WriteCheck | null> {
    const text = sql.replace(/\s+/g, ' ').trim();
    const target = /^(?:WITH\b.*?\b)?(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+(?:"?(\w+)"?\.)?"?(\w+)"?/i.exec(text);
    if (!target || !/^(INSERT|UPDATE|DELETE|WITH)\b/i.test(text)) return null;
    const table = target[2]!;
    const schema = target[1] ?? 'public';
    const distributed = this.distribution.find((d) => d.table === table);
    if (!distributed) return null;

    const n = ++this.counter;
    await this.client.query('BEGIN');
    try {
      await this.client.query(`PREPARE citus_check_${n} AS ${text}`);
      const { rows } = await this.client.query<{ types: string[] }>(
        'SELECT parameter_types::text[] AS types FROM pg_prepared_statements WHERE name = $1',
        [`citus_check_${n}`],
      );
      await this.client.query(`DEALLOCATE citus_check_${n}`);
      const types = rows[0]!.types;
      const constant = text.replace(/\$(\d+)\b/g, (_all, index: string) => `(NULL::${types[Number(index) - 1]})`);
      const returningAt = topLevelKeyword(constant, 'RETURNING');
      const body = returningAt < 0 ? constant : constant.slice(0, returningAt).trim();
      const returning = returningAt < 0 ? null : constant.slice(returningAt + 'RETURNING'.length).trim();

      await this.client.query(`CREATE TEMP VIEW citus_check_v${n} AS SELECT`);
      await this.client.query(`CREATE RULE citus_check_r${n} AS ON INSERT TO citus_check_v${n} DO INSTEAD ${body}`);
      const action = await this.storedTree(`SELECT ev_action FROM pg_rewrite WHERE rulename = $1`, [`citus_check_r${n}`]);
      const query = (action as TreeValue[])[0] as TreeNode;
      let returningList: TreeValue = null;
      if (returning) {
        await this.client.query(`CREATE TEMP VIEW citus_check_ret${n} AS SELECT ${returning} FROM "${schema}"."${table}"`);
        const view = await this.storedTree(
          `SELECT ev_action FROM pg_rewrite WHERE ev_class = $1::regclass AND rulename = '_RETURN'`,
          [`citus_check_ret${n}`],
        );
        returningList = ((view as TreeValue[])[0] as TreeNode).targetList!;
      }
      await this.lookUp([query, returningList]);
      return { refusals: this.refusals(query, returningList, distributed) };
    } finally {
      await this.client.query('ROLLBACK');
    }
  }

  private async storedTree(sql: string, params: unknown[]): Promise<TreeValue> {
    const { rows } = await this.client.query<{ ev_action: string }>(sql, params);
    return parseNodeString(rows[0]!.ev_action);
  }

  /** Loads the volatility of every function, operator and I/O conversion the trees use. */
  private async lookUp(trees: TreeValue[]): Promise<void> {
    const procs = new Set<string>();
    const operators = new Set<string>();
    const types = new Set<string>();
    for (const node of trees.flatMap((tree) => [...walk(tree)])) {
      for (const field of ['funcid', 'opfuncid', 'aggfnoid', 'winfnoid']) {
        if (typeof node[field] === 'string' && node[field] !== '0') procs.add(node[field] as string);
      }
      if (node.node === 'ROWCOMPAREEXPR') for (const op of node.opnos as string[]) if (!this.operators.has(op)) operators.add(op);
      if (node.node === 'COERCEVIAIO') {
        types.add(node.resulttype as string);
        types.add(typeOf(node.arg as TreeNode));
      }
    }
    if (operators.size > 0) {
      const { rows } = await this.client.query<{ oid: string; code: string }>(
        'SELECT oid::text, oprcode::oid::text AS code FROM pg_operator WHERE oid = ANY($1::oid[])',
        [[...operators]],
      );
      for (const row of rows) {
        this.operators.set(row.oid, row.code);
        procs.add(row.code);
      }
    }
    const missingTypes = [...types].filter((t) => !this.types.has(t));
    if (missingTypes.length > 0) {
      const { rows } = await this.client.query<{ oid: string; input: string; output: string }>(
        'SELECT oid::text, typinput::oid::text AS input, typoutput::oid::text AS output FROM pg_type WHERE oid = ANY($1::oid[])',
        [missingTypes],
      );
      for (const row of rows) {
        this.types.set(row.oid, { input: row.input, output: row.output });
        procs.add(row.input);
        procs.add(row.output);
      }
    }
    const missing = [...procs].filter((p) => !this.procs.has(p));
    if (missing.length > 0) {
      const { rows } = await this.client.query<{ oid: string; volatility: Volatility }>(
        'SELECT oid::text, provolatile::text AS volatility FROM pg_proc WHERE oid = ANY($1::oid[])',
        [missing],
      );
      for (const row of rows) this.procs.set(row.oid, row.volatility);
    }
  }

  /** The volatility of what this node itself calls (not its children), as check_functions_in_node sees it. */
  private ownVolatility(node: TreeNode): Volatility {
    const proc = (oid: TreeValue | undefined) => this.procs.get(oid as string) ?? 'v';
    switch (node.node) {
      case 'FUNCEXPR':
        return proc(node.funcid);
      case 'OPEXPR':
      case 'DISTINCTEXPR':
      case 'NULLIFEXPR':
      case 'SCALARARRAYOPEXPR':
        return proc(node.opfuncid);
      case 'AGGREF':
        return proc(node.aggfnoid);
      case 'WINDOWFUNC':
        return proc(node.winfnoid);
      case 'ROWCOMPAREEXPR':
        return (node.opnos as string[]).map((op) => proc(this.operators.get(op))).reduce(max, 'i');
      case 'COERCEVIAIO': {
        const input = this.types.get(node.resulttype as string)?.input;
        const output = this.types.get(typeOf(node.arg as TreeNode))?.output;
        return max(proc(input), proc(output));
      }
      case 'SQLVALUEFUNCTION':
        return 's'; // CURRENT_TIMESTAMP and friends: contain_mutable_functions calls them mutable
      case 'NEXTVALUEEXPR':
        return 'v';
      default:
        return 'i';
    }
  }

  /** The most volatile thing anywhere under `tree`. */
  private volatility(tree: TreeValue): Volatility {
    let result: Volatility = 'i';
    for (const node of walk(tree)) if (CALLS.has(node.node) || node.node === 'SQLVALUEFUNCTION' || node.node === 'NEXTVALUEEXPR') result = max(result, this.ownVolatility(node));
    return result;
  }

  /**
   * MasterIrreducibleExpression: a STABLE call with a column among its
   * arguments (Citus evaluates STABLE calls on the coordinator, which it
   * cannot do for a per-row value), or a CASE / COALESCE holding anything
   * not IMMUTABLE (evaluated lazily, so it cannot be pre-evaluated).
   */
  private irreducible(tree: TreeValue): string[] {
    const found = new Set<string>();
    const visit = (node: TreeNode): boolean => {
      if (node.node === 'COALESCEEXPR' || node.node === 'CASEEXPR') {
        if (this.volatility(node.node === 'COALESCEEXPR' ? node.args! : node) !== 'i') {
          found.add('non-IMMUTABLE functions are not allowed in CASE or COALESCE statements');
        }
        return false;
      }
      if (node.node === 'VAR') return true;
      const kids = children(node);
      const hasVar = kids.map(visit).some(Boolean);
      if (this.ownVolatility(node) === 's' && hasVar) found.add('STABLE functions used in UPDATE queries cannot be called with column references');
      return hasVar;
    };
    for (const node of Array.isArray(tree) ? tree.filter(anyNode) : isNode(tree) ? [tree] : []) visit(node);
    return [...found];
  }

  private refusals(query: TreeNode, returningList: TreeValue, distributed: TableDistribution): string[] {
    const refusals = new Set<string>();
    const command = COMMAND[query.commandType as string];
    const targets = ((query.targetList as TreeValue[] | null) ?? []).filter((t): t is TreeNode => isNode(t) && t.resjunk !== 'true');
    const quals = isNode(query.jointree) ? query.jointree.quals : null;
    const ctes = ((query.cteList as TreeValue[] | null) ?? []).filter(anyNode);

    if (command === 'INSERT' && query.hasSubLinks === 'true' && !this.isInsertSelect(query)) {
      refusals.add('subqueries are not supported within INSERT queries');
    }
    if (ctes.length > 0 && command === 'INSERT') refusals.add("Router planner doesn't support common table expressions with INSERT queries.");
    for (const cte of ctes) {
      const inner = cte.ctequery as TreeNode;
      if (COMMAND[inner.commandType as string] === 'INSERT') refusals.add("Router planner doesn't support INSERT common table expressions.");
      if (this.volatility(inner) === 'v') refusals.add("Router planner doesn't support VOLATILE functions in common table expressions.");
    }
    if ((command === 'UPDATE' || command === 'DELETE') && this.volatility(query) === 'v') {
      refusals.add('functions used in UPDATE queries on distributed tables must not be VOLATILE');
    }
    for (const target of targets) {
      if ([...walk(target.expr)].some((n) => n.node === 'FIELDSTORE')) refusals.add('inserting or modifying composite type fields is not supported');
      if (command !== 'UPDATE') continue;
      if (target.resname === distributed.column && !this.isSameColumn(target.expr, target.resno as string)) {
        refusals.add('modifying the partition value of rows is not allowed');
      }
      for (const refusal of this.irreducible(target.expr!)) refusals.add(refusal);
    }
    if (command !== 'INSERT' && quals) {
      if (this.volatility(quals) === 'v') refusals.add('functions used in the WHERE/ON/WHEN clause of modification queries on distributed tables must not be VOLATILE');
      for (const refusal of this.irreducible(quals)) refusals.add(refusal);
      if ([...walk(quals)].some((n) => n.node === 'CURRENTOFEXPR')) refusals.add('cannot run DML queries with cursors');
    }
    if (returningList && this.volatility(returningList) !== 'i') {
      const culprits = (returningList as TreeValue[]).filter(anyNode).filter((t) => this.volatility(t.expr!) !== 'i').map((t) => t.resname);
      refusals.add(`non-IMMUTABLE functions are not allowed in the RETURNING clause (${culprits.join(', ')})`);
    }
    const onConflict = isNode(query.onConflict) ? query.onConflict : null;
    if (onConflict) {
      for (const set of ((onConflict.onConflictSet as TreeValue[] | null) ?? []).filter(anyNode)) {
        if (set.resname === distributed.column) {
          if (!this.isSameColumn(set.expr, set.resno as string)) refusals.add('modifying the partition value of rows is not allowed');
        } else if (!isNode(set.expr, 'VAR') && this.volatility(set.expr!) !== 'i') {
          refusals.add('functions used in the DO UPDATE SET clause of INSERTs on distributed tables must be marked IMMUTABLE');
        }
      }
      if (this.volatility(onConflict.arbiterWhere ?? null) !== 'i' || this.volatility(onConflict.onConflictWhere ?? null) !== 'i') {
        refusals.add('functions used in the WHERE clause of the ON CONFLICT clause of INSERTs on distributed tables must be marked IMMUTABLE');
      }
    }
    return [...refusals];
  }

  /** `SET col = col`: the target's own column, unchanged. */
  private isSameColumn(expr: TreeValue | undefined, resno: string): boolean {
    return isNode(expr, 'VAR') && expr.varattno === resno && expr.varlevelsup === '0';
  }

  private isInsertSelect(query: TreeNode): boolean {
    const rtable = ((query.rtable as TreeValue[] | null) ?? []).filter(anyNode);
    return rtable.some((rte) => rte.rtekind === '1'); // RTE_SUBQUERY: INSERT … SELECT
  }
}

const anyNode = (value: TreeValue): value is TreeNode => isNode(value);

/** The position of a keyword outside parentheses and quotes, or -1. */
function topLevelKeyword(text: string, keyword: string): number {
  let depth = 0;
  let quote: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      if (c === quote) quote = null;
    } else if (c === "'" || c === '"') quote = c;
    else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (depth === 0 && new RegExp(`^ ${keyword} `, 'i').test(text.slice(i, i + keyword.length + 2))) return i + 1;
  }
  return -1;
}

/** exprType(), for the nodes that carry their result type. */
function typeOf(node: TreeNode): string {
  switch (node.node) {
    case 'VAR':
      return node.vartype as string;
    case 'CONST':
      return node.consttype as string;
    case 'PARAM':
      return node.paramtype as string;
    case 'FUNCEXPR':
      return node.funcresulttype as string;
    case 'OPEXPR':
    case 'DISTINCTEXPR':
    case 'NULLIFEXPR':
      return node.opresulttype as string;
    case 'COERCEVIAIO':
    case 'RELABELTYPE':
    case 'ARRAYCOERCEEXPR':
    case 'COERCETODOMAIN':
      return node.resulttype as string;
    case 'COALESCEEXPR':
      return node.coalescetype as string;
    case 'CASEEXPR':
      return node.casetype as string;
    case 'MINMAXEXPR':
      return node.minmaxtype as string;
    case 'ARRAYEXPR':
      return node.array_typeid as string;
    case 'SQLVALUEFUNCTION':
      return node.type as string;
    case 'AGGREF':
      return node.aggtype as string;
    case 'BOOLEXPR':
    case 'NULLTEST':
    case 'BOOLEANTEST':
    case 'SCALARARRAYOPEXPR':
      return '16';
    default:
      throw new Error(`cannot tell the type of a ${node.node} node`);
  }
}
