/**
 * How the schema is distributed over a Citus cluster (docs/architecture.md, "Storage"), written
 * down once. The newest distribution migration
 * (`20261203000200_event_log_distribution`) applies exactly this (SQL cannot
 * import it, so `test/citus-catalog.test.ts` checks that the two agree), and the tests check Citus's rules against it: unique indexes and
 * foreign keys in the catalog, and the shape of every statement the server
 * sends.
 *
 * Two co-location groups. Everything about one conversation lives on one
 * shard of the `conversations` group, so sends, history and membership checks
 * route to one node; a user's profile and inbox index live on one shard of the
 * `users` group, so "my conversations" starts on one node too.
 */
export interface TableDistribution {
  readonly table: string;
  /** The column Citus hashes to choose a row's shard. */
  readonly column: string;
  /** The group's first table; a table that heads its group names itself. */
  readonly colocateWith: string;
}

/**
 * In the order the migration distributes them: a group's first table before
 * the tables co-located with it, because their foreign keys point at it and
 * Citus checks a key against a table that must already be distributed.
 */
export const DISTRIBUTION: readonly TableDistribution[] = [
  { table: 'conversations', column: 'id', colocateWith: 'conversations' },
  { table: 'conversation_members', column: 'conversation_id', colocateWith: 'conversations' },
  { table: 'messages', column: 'conversation_id', colocateWith: 'conversations' },
  { table: 'message_reactions', column: 'conversation_id', colocateWith: 'conversations' },
  { table: 'conversation_departures', column: 'conversation_id', colocateWith: 'conversations' },
  { table: 'users', column: 'id', colocateWith: 'users' },
  { table: 'user_conversations', column: 'user_id', colocateWith: 'users' },
];

/** Tables the migration runner owns and that stay on the coordinator. */
export const LOCAL_TABLES: readonly string[] = ['_prisma_migrations'];

export function distributionOf(table: string): TableDistribution | undefined {
  return DISTRIBUTION.find((entry) => entry.table === table);
}

/** The tables of one co-location group, its head first. */
export function colocationGroup(head: string): TableDistribution[] {
  return DISTRIBUTION.filter((entry) => entry.colocateWith === head);
}
