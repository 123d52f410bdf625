import {
  execute,
  Kind,
  print,
  visit,
  type DocumentNode,
  type ExecutionResult,
  type FieldNode,
  type GraphQLResolveInfo,
  type GraphQLSchema,
  type OperationDefinitionNode,
} from 'graphql';
import type { Context } from '../context.js';
import { maskError } from '../errors.js';

/** What is needed to execute a subscription's selection for an event, without holding `info`. */
export interface Operation {
  schema: GraphQLSchema;
  document: DocumentNode;
  operationName: string | undefined;
  /** As the client sent them (execute coerces them again). */
  variables: Record<string, unknown> | undefined;
}

interface OperationShape {
  /** The root field without its arguments, plus every fragment: what shapes the payload. */
  text: string;
  /** Variables the payload can depend on (used below the root field, not in its arguments). */
  variables: string[];
  document: DocumentNode;
}

// Parsed documents are cached (one DocumentNode per query string), so every
// subscriber of the same query shares one OperationDefinitionNode and this
// work happens once per query.
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

function operationOf(info: GraphQLResolveInfo, variables: Record<string, unknown> | undefined): Operation {
  return { schema: info.schema, document: shapeOf(info).document, operationName: info.operation.name?.value, variables };
}

function serialize(result: ExecutionResult): string {
  return JSON.stringify(result.errors ? { ...result, errors: result.errors.map((e) => maskError(e).toJSON()) } : result);
}

/**
 * Executes the operation for one event, as graphql-js does per subscriber
 * (`execute` with the event as root value), and serializes the result.
 * Synchronous whenever every resolver is, which keeps the hot path free of
 * promise overhead.
 */
export function render(operation: Operation, context: Context, event: unknown): string | Promise<string> {
  const result = execute({
    schema: operation.schema,
    document: operation.document,
    operationName: operation.operationName,
    variableValues: operation.variables,
    rootValue: event,
    contextValue: context,
  });
  return result instanceof Promise ? result.then(serialize) : serialize(result as ExecutionResult);
}

/**
 * Renders events for every subscription with the same key: their payloads
 * are byte-identical, so an event is executed and serialized once per key.
 */
export interface SharedRenderer {
  readonly key: string;
  /** The operation as first seen with this key (same shape and payload-relevant variables for all). */
  readonly operation: Operation;
  render(event: unknown): string | Promise<string>;
}

const renderers = new Map<string, SharedRenderer>();
const RENDERERS_MAX = 2_000;

/**
 * The shared renderer of this subscription. Two subscriptions share one when
 * their payloads must be identical: same root field (alias, directives,
 * selection, fragments) and same values of the variables used below it.
 * Arguments of the root field (which conversation, which cursor) do not
 * matter: they choose the events, not the shape of each payload. Renderers
 * are interned, so a subscription holds a reference, not its own key string.
 */
export function sharedRendererFor(info: GraphQLResolveInfo, variables: Record<string, unknown> | undefined, sharedContext: Context): SharedRenderer {
  const shape = shapeOf(info);
  const key = shape.text + '\n' + JSON.stringify(shape.variables.map((name) => info.variableValues[name] ?? null));
  let renderer = renderers.get(key);
  if (!renderer) {
    if (renderers.size >= RENDERERS_MAX) renderers.clear();
    const operation = operationOf(info, variables);
    renderer = { key, operation, render: (event) => render(operation, sharedContext, event) };
    renderers.set(key, renderer);
  }
  return renderer;
}
