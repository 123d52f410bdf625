import {
  execute,
  getOperationAST,
  Kind,
  print,
  visit,
  type DocumentNode,
  type ExecutionResult,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLError,
  type GraphQLSchema,
  type OperationDefinitionNode,
  TypeInfo,
  visitWithTypeInfo,
} from 'graphql';
import type { Context } from '../context.js';

/** What is needed to execute a subscription's selection for an event. */
export interface Operation {
  document: DocumentNode;
  operationName: string | undefined;
  /** As the client sent them (execute coerces them). */
  variables: Record<string, unknown> | undefined;
}

/**
 * Renders events for every subscription with the same key: their payloads are
 * byte-identical, so an event is executed and serialized once per key, not
 * once per subscriber (docs/architecture.md, "Rendering").
 */
export interface SharedRenderer {
  /** null: this subscription's payloads cannot be shared; each is rendered in its own context. */
  readonly key: string | null;
  /** The operation as first seen with this key (same shape and payload-relevant variables for all). */
  readonly operation: Operation;
  /** Renders in the shared context (no viewer). Only called when `key` is set. */
  render(event: unknown): string | Promise<string>;
}

interface OperationShape {
  /** The root field without its arguments, plus every fragment: what shapes the payload. */
  text: string;
  /** Variables the payload can depend on (used below the root field, not in its arguments). */
  variables: string[];
}

const RENDERERS_MAX = 2_000;

/**
 * Executes subscription selections for events and serializes the results,
 * for one app: the shared context (and so the services) and the error
 * masking (which counts and logs unexpected errors) are this app's own.
 */
export class Renderers {
  private readonly shapes = new WeakMap<OperationDefinitionNode, OperationShape | null>();
  private readonly shared = new Map<string, SharedRenderer>();

  constructor(
    private readonly schema: GraphQLSchema,
    /** Context for payloads rendered once and shared (no viewer). */
    private readonly sharedContext: Context,
    /** The app's error masking: counts errors and logs unexpected ones. */
    private readonly maskError: (error: GraphQLError) => GraphQLError,
  ) {}

  /**
   * Executes the operation for one event, as graphql-js does per subscriber
   * (`execute` with the event as root value), and serializes the result.
   * Synchronous whenever every resolver is, which keeps the hot path free of
   * promise overhead.
   */
  render(operation: Operation, context: Context, event: unknown): string | Promise<string> {
    const result = execute({
      schema: this.schema,
      document: operation.document,
      operationName: operation.operationName,
      variableValues: operation.variables,
      rootValue: event,
      contextValue: context,
    });
    return result instanceof Promise ? result.then((r) => this.serialize(r)) : this.serialize(result as ExecutionResult);
  }

  /** Serializes a result with the app's error masking. */
  serialize(result: ExecutionResult): string {
    return JSON.stringify(result.errors ? { ...result, errors: result.errors.map((e) => this.maskError(e).toJSON()) } : result);
  }

  /**
   * The renderer of a subscription. Two subscriptions share one when their
   * payloads must be identical: same root field (alias, directives, selection,
   * fragments) and same values of the variables used below it. Arguments of
   * the root field (which conversation, which cursor) do not matter: they
   * choose the events, not the shape of each payload. Renderers are interned,
   * so a subscription holds a reference, not its own key string.
   */
  for(document: DocumentNode, operationName: string | undefined, variables: Record<string, unknown> | undefined): SharedRenderer {
    const operation: Operation = { document, operationName, variables };
    const definition = getOperationAST(document, operationName);
    const shape = definition ? this.shapeOf(definition, document) : null;
    if (!shape) return this.unshared(operation);
    const key = shape.text + '\n' + JSON.stringify(shape.variables.map((name) => variables?.[name] ?? null));
    let renderer = this.shared.get(key);
    if (!renderer) {
      if (this.shared.size >= RENDERERS_MAX) this.shared.clear();
      const context = this.sharedContext;
      renderer = { key, operation, render: (event) => this.render(operation, context, event) };
      this.shared.set(key, renderer);
    }
    return renderer;
  }

  /** A renderer whose payloads are rendered per subscriber (in their own context). */
  unshared(operation: Operation): SharedRenderer {
    return {
      key: null,
      operation,
      render: () => {
        throw new Error('An unshared renderer renders per subscriber');
      },
    };
  }

  /** Whether the document selects a field marked viewer-dependent (src/schema/viewer-dependent.ts). */
  private dependsOnViewer(document: DocumentNode): boolean {
    const typeInfo = new TypeInfo(this.schema);
    let found = false;
    visit(
      document,
      visitWithTypeInfo(typeInfo, {
        Field() {
          if ((typeInfo.getFieldDef()?.extensions as { viewerDependent?: boolean } | undefined)?.viewerDependent) found = true;
        },
      }),
    );
    return found;
  }

  // Parsed documents are cached by the transports (one DocumentNode per query
  // string), so every subscriber of the same query shares one operation node
  // and this work happens once per query.
  private shapeOf(definition: OperationDefinitionNode, document: DocumentNode): OperationShape | null {
    let shape = this.shapes.get(definition);
    if (shape !== undefined) return shape;
    const selections = definition.selectionSet.selections;
    const root = selections.length === 1 && selections[0]!.kind === Kind.FIELD ? (selections[0] as FieldNode) : undefined;
    if (!root || this.dependsOnViewer(document)) {
      // A root selected through a fragment (rare), or a field whose value
      // depends on who asks (marked in the schema): rendered per subscriber.
      shape = null;
    } else {
      const payloadShape: FieldNode = { ...root, arguments: [] };
      const fragments = document.definitions
        .filter((d): d is FragmentDefinitionNode => d.kind === Kind.FRAGMENT_DEFINITION)
        .sort((a, b) => a.name.value.localeCompare(b.name.value));
      const used = new Set<string>();
      for (const node of [payloadShape, ...fragments]) {
        visit(node, {
          Variable(variable) {
            used.add(variable.name.value);
          },
        });
      }
      shape = { text: [print(payloadShape), ...fragments.map((f) => print(f))].join('\n'), variables: [...used].sort() };
    }
    this.shapes.set(definition, shape);
    return shape;
  }
}
