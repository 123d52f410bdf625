import { lexicographicSortSchema, printSchema } from 'graphql';
import { builder } from '../builder.js';
import './user.js';
import './conversation.js';
import './message.js';
import './inbox.js';
import './events.js';
import './presence.js';

/** The whole public schema; `npm run schema` prints it to the committed schema.graphql. */
export const schema = builder.toSchema();

export function printPublicSchema(): string {
  return printSchema(lexicographicSortSchema(schema)) + '\n';
}
