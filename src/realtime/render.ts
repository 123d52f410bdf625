import {
  execute,
  Kind,
  print,
  visit,
  type DocumentNode,
  type ExecutionResult,
  type FieldNode,
  type GraphQLResolveInfo,
  type OperationDefinitionNode,
} from 'graphql';
import type { Context } from '../context.js';
import { maskError } from '../errors.js';

interface OperationShape {
  /** The root field without its arguments, plus every fragment: what shapes the payload. */
  text: string;
  /** Variables the payload can depend on (used below the root field, not in its arguments). */
  variables: string[];
  document: DocumentNode;
}

// Yoga caches parsed documents, so every subscriber of the same query string
// shares one OperationDefinitionNode and this work happens once per query.
const shapes = new WeakMap<OperationDefinitionNode, OperationShape>();

function shapeOf(info: GraphQLResolveInfo): OperationShape {
  let shape = shapes.get(info.operation);
  if (shape) return shape;
  const root = info.fieldNodes[0]!;
  const payloadShape: FieldNode = { ...root, arguments: [] };
  const fragments = Object.values(info.fragments).sort((a, b) => a.name.value.localeCompare(b.name.value));
  const used = new Set<string>();
  for (const node of [payloadShape, ...fragments]) {
    visit(node, {
      Variable(variable) {
        used.add(variable.name.value);
      },
    });
  }
  shape = {
    text: [print(payloadShape), ...fragments.map(print)].join('\n'),
    variables: [...used].sort(),
    document: { kind: Kind.DOCUMENT, definitions: [info.operation, ...fragments] },
  };
  shapes.set(info.operation, shape);
  return shape;
}

/**
 * Two subscriptions whose payloads must be byte-identical for the same event
 * get the same key: same root field (alias, directives, selection,
 * fragments) and same values of the variables used below it. Arguments of
 * the root field (which conversation, which cursor) do not matter: they
 * choose the events, not the shape of each payload.
 */
export function shareKeyOf(info: GraphQLResolveInfo): string {
  const shape = shapeOf(info);
  return shape.text + '\n' + JSON.stringify(shape.variables.map((name) => info.variableValues[name] ?? null));
}

function serialize(result: ExecutionResult): string {
  return JSON.stringify(result.errors ? { ...result, errors: result.errors.map((e) => maskError(e).toJSON()) } : result);
}

/**
 * Executes the subscription's operation for one event, as graphql-js does per
 * subscriber (`execute` with the event as root value), and serializes the
 * result. Synchronous whenever every resolver is, which keeps the hot path
 * free of promise overhead.
 */
export function createRenderer(
  info: GraphQLResolveInfo,
  variables: Record<string, unknown> | undefined,
  context: Context,
): (event: unknown) => string | Promise<string> {
  const { document } = shapeOf(info);
  const schema = info.schema;
  const operationName = info.operation.name?.value;
  return (event) => {
    const result = execute({ schema, document, operationName, variableValues: variables, rootValue: event, contextValue: context });
    return result instanceof Promise ? result.then(serialize) : serialize(result as ExecutionResult);
  };
}
