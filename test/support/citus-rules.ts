import type { TableDistribution } from '../../src/db/distribution.js';
import type { TestDatabase } from './database.js';

/**
 * Citus's rules for distributed tables, checked against PostgreSQL's own
 * catalogs, so that a schema change that would break `create_distributed_table`
 * (or a later ALTER on a cluster) fails here, where Citus is not installed.
 *
 * The rules, as Citus enforces them (citus src/backend/distributed/commands/
 * create_distributed_table.c, foreign_constraint.c; docs.citusdata.com,
 * "Creating and Modifying Distributed Objects"):
 * - a PRIMARY KEY, UNIQUE constraint or unique index must contain the
 *   distribution column (an EXCLUDE constraint must, with `=`): uniqueness is
 *   only checked within a shard;
 * - a foreign key between distributed tables must join co-located tables on
 *   their distribution columns (in the same position on both sides), and may
 *   not say ON UPDATE CASCADE / SET NULL / SET DEFAULT or ON DELETE SET NULL /
 *   SET DEFAULT; a local table and a distributed one cannot reference each other;
 * - co-located tables have distribution columns of one type.
 *
 * Each violation is one sentence naming the table and the constraint or index.
 */
export async function citusRuleViolations(
  db: Pick<TestDatabase, 'query'>,
  distribution: readonly TableDistribution[],
  options: { schema?: string; localTables?: readonly string[] } = {},
): Promise<string[]> {
  const schema = options.schema ?? 'public';
  const local = new Set(options.localTables ?? []);
  const byTable = new Map(distribution.map((entry) => [entry.table, entry]));
  const violations: string[] = [];

  const columns = await db.query<{ table_name: string; column_name: string; type: string; not_null: boolean }>(
    `SELECT c.relname::text AS table_name, a.attname::text AS column_name,
            format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null
       FROM pg_attribute a
       JOIN pg_class c ON c.oid = a.attrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped`,
    [schema],
  );
  const column = (table: string, name: string) => columns.find((c) => c.table_name === table && c.column_name === name);
  const tables = new Set(columns.map((c) => c.table_name));

  // Every table is either distributed as declared, or declared local.
  for (const table of [...tables].sort()) {
    if (!byTable.has(table) && !local.has(table)) {
      violations.push(`table ${table} is neither distributed (src/db/distribution.ts) nor declared local`);
    }
  }
  for (const entry of distribution) {
    if (!tables.has(entry.table)) {
      violations.push(`table ${entry.table} is declared distributed but does not exist`);
      continue;
    }
    const own = column(entry.table, entry.column);
    if (!own) {
      violations.push(`table ${entry.table} has no distribution column ${entry.column}`);
      continue;
    }
    if (!own.not_null) violations.push(`distribution column ${entry.table}.${entry.column} is nullable (Citus rejects NULL distribution values)`);
    const head = byTable.get(entry.colocateWith);
    const headColumn = head && column(head.table, head.column);
    if (!head || head.colocateWith !== head.table) {
      violations.push(`table ${entry.table} is co-located with ${entry.colocateWith}, which does not head a co-location group`);
    } else if (headColumn && headColumn.type !== own.type) {
      violations.push(
        `table ${entry.table} is co-located with ${head.table} but its distribution column is ${own.type}, not ${headColumn.type}`,
      );
    }
  }

  // Unique indexes (primary keys and unique constraints are unique indexes too).
  const uniques = await db.query<{ table_name: string; index_name: string; constraint_name: string | null; key_columns: string[] }>(
    `SELECT c.relname::text AS table_name, ic.relname::text AS index_name, con.conname::text AS constraint_name,
            array(SELECT pg_get_indexdef(i.indexrelid, k, true)
                    FROM generate_series(1, i.indnkeyatts) AS k ORDER BY k)::text[] AS key_columns
       FROM pg_index i
       JOIN pg_class c ON c.oid = i.indrelid
       JOIN pg_class ic ON ic.oid = i.indexrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.contype IN ('p', 'u')
      WHERE n.nspname = $1 AND i.indisunique
      ORDER BY 1, 2`,
    [schema],
  );
  for (const index of uniques) {
    const entry = byTable.get(index.table_name);
    if (!entry) continue;
    // A key column that is an expression (lower(x)) does not count: Citus wants the column itself.
    if (!index.key_columns.includes(entry.column)) {
      const what = index.constraint_name ? `constraint ${index.constraint_name}` : `unique index ${index.index_name}`;
      violations.push(
        `${what} on ${index.table_name} (${index.key_columns.join(', ')}) does not include the distribution column ${entry.column}`,
      );
    }
  }

  const exclusions = await db.query<{ table_name: string; constraint_name: string; columns: string[]; operators: string[] }>(
    `SELECT c.relname::text AS table_name, con.conname::text AS constraint_name,
            array(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
                    JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum ORDER BY k.ord)::text[] AS columns,
            array(SELECT o.oprname::text FROM unnest(con.conexclop) WITH ORDINALITY AS x(opr, ord)
                    JOIN pg_operator o ON o.oid = x.opr ORDER BY x.ord)::text[] AS operators
       FROM pg_constraint con
       JOIN pg_class c ON c.oid = con.conrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND con.contype = 'x'`,
    [schema],
  );
  for (const exclusion of exclusions) {
    const entry = byTable.get(exclusion.table_name);
    if (!entry) continue;
    const at = exclusion.columns.indexOf(entry.column);
    if (at < 0 || exclusion.operators[at] !== '=') {
      violations.push(
        `exclusion constraint ${exclusion.constraint_name} on ${exclusion.table_name} does not compare the distribution column ${entry.column} with =`,
      );
    }
  }

  const foreignKeys = await db.query<{
    constraint_name: string;
    table_name: string;
    referenced_table: string;
    columns: string[];
    referenced_columns: string[];
    on_update: string;
    on_delete: string;
  }>(
    `SELECT con.conname::text AS constraint_name, src.relname::text AS table_name, dst.relname::text AS referenced_table,
            array(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
                    JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum ORDER BY k.ord)::text[] AS columns,
            array(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY AS k(attnum, ord)
                    JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum ORDER BY k.ord)::text[] AS referenced_columns,
            con.confupdtype::text AS on_update, con.confdeltype::text AS on_delete
       FROM pg_constraint con
       JOIN pg_class src ON src.oid = con.conrelid
       JOIN pg_class dst ON dst.oid = con.confrelid
       JOIN pg_namespace n ON n.oid = src.relnamespace
      WHERE n.nspname = $1 AND con.contype = 'f'
      ORDER BY 1`,
    [schema],
  );
  const ACTION: Record<string, string> = { a: 'NO ACTION', r: 'RESTRICT', c: 'CASCADE', n: 'SET NULL', d: 'SET DEFAULT' };
  for (const fk of foreignKeys) {
    const from = byTable.get(fk.table_name);
    const to = byTable.get(fk.referenced_table);
    const name = `foreign key ${fk.constraint_name} (${fk.table_name} -> ${fk.referenced_table})`;
    if (!from && !to) continue; // between local tables: not Citus's business
    if (!from || !to) {
      violations.push(`${name} joins a distributed table and a local one`);
      continue;
    }
    if (from.colocateWith !== to.colocateWith) {
      violations.push(`${name} joins tables of different co-location groups (${from.colocateWith}, ${to.colocateWith})`);
      continue;
    }
    const at = fk.columns.indexOf(from.column);
    if (at < 0 || fk.referenced_columns[at] !== to.column) {
      violations.push(
        `${name} does not join ${fk.table_name}.${from.column} to ${fk.referenced_table}.${to.column} ` +
          `(it joins ${fk.columns.join(', ')} to ${fk.referenced_columns.join(', ')})`,
      );
    }
    if (['c', 'n', 'd'].includes(fk.on_update)) {
      violations.push(`${name} says ON UPDATE ${ACTION[fk.on_update]}, which Citus rejects on a distribution column`);
    }
    if (['n', 'd'].includes(fk.on_delete)) {
      violations.push(`${name} says ON DELETE ${ACTION[fk.on_delete]}, which Citus rejects on a distribution column`);
    }
  }

  return violations;
}
