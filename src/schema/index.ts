import { GraphQLObjectType, GraphQLSchema, isNonNullType, lexicographicSortSchema, printSchema } from 'graphql';
import { builder } from '../builder.js';
import './user.js';
import './conversation.js';
import './message.js';
import './inbox.js';
import './events.js';
import './presence.js';

/**
 * Every mutation field is nullable, whatever its definition says: in an
 * operation with several mutations, one that fails is null with its error
 * (its path names it) while the others keep their results. A non-null field
 * would null the whole `data` and hide mutations that did take effect
 * (docs/architecture.md, "Operations with several mutations").
 */
function withNullableMutations(built: GraphQLSchema): GraphQLSchema {
  const config = built.toConfig();
  const mutation = config.mutation;
  if (!mutation) return built;
  const { fields, ...rest } = mutation.toConfig();
  const nullable = new GraphQLObjectType({
    ...rest,
    fields: Object.fromEntries(Object.entries(fields).map(([name, field]) => [name, { ...field, type: isNonNullType(field.type) ? field.type.ofType : field.type }])),
  });
  return new GraphQLSchema({ ...config, mutation: nullable, types: config.types.map((type) => (type === mutation ? nullable : type)) });
}

/** The whole public schema; `npm run schema` prints it to the committed schema.graphql. */
export const schema = withNullableMutations(builder.toSchema());

export function printPublicSchema(): string {
  return printSchema(lexicographicSortSchema(schema)) + '\n';
}
