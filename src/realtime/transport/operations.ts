import {
  createSourceEventStream,
  execute,
  getOperationAST,
  GraphQLError,
  parse,
  validate,
  type DocumentNode,
  type ExecutionResult,
  type GraphQLSchema,
  type OperationTypeNode,
} from 'graphql';
import type { Context } from '../../context.js';
import type { Renderers, SharedRenderer } from '../render.js';
import { LiveStream } from '../streams/live-stream.js';
import type { Sink } from './sink.js';

/** Longest query text accepted by the realtime transports (WebSocket, SSE). */
export const MAX_QUERY_LENGTH = 16 * 1024;
/** Most tokens a query may have (graphql-js's parse limit): parsing stays cheap. */
export const MAX_QUERY_TOKENS = 5000;

/** An operation as a client sends it (graphql-ws `subscribe` payload, SSE request body). */
export interface OperationRequest {
  query: unknown;
  operationName?: unknown;
  variables?: unknown;
}

/** A request that parsed and validated. */
export interface PreparedOperation {
  document: DocumentNode;
  operationName: string | undefined;
  variables: Record<string, unknown> | undefined;
  kind: OperationTypeNode;
}

/** A subscription that started: the transport cancels it when the client goes away. */
export interface RunningSubscription {
  cancel(): void;
}

export interface OperationsOptions {
  schema: GraphQLSchema;
  renderers: Renderers;
  /** The app's error masking (counts errors, logs unexpected ones). */
  maskError: (error: GraphQLError) => GraphQLError;
  onError: (error: unknown, what: string) => void;
}

const badRequest = (message: string) => new GraphQLError(message, { extensions: { code: 'BAD_USER_INPUT' } });

/**
 * How every realtime transport runs an operation (docs/architecture.md,
 * "Transports"): the same parsing limits, document cache, validation,
 * masking and subscription start, so WebSocket and SSE behave alike.
 */
export class Operations {
  private readonly documents = new Map<string, DocumentNode | readonly GraphQLError[]>();
  private static readonly DOCUMENTS_MAX = 1000;

  constructor(private readonly options: OperationsOptions) {}

  /** Parses (cached: thousands of clients send the same few), validates and picks the operation; or the errors. */
  prepare(request: OperationRequest): PreparedOperation | readonly GraphQLError[] {
    const { query, operationName, variables } = request;
    if (typeof query !== 'string' || query === '') return [badRequest('Missing query')];
    if (query.length > MAX_QUERY_LENGTH) return [badRequest(`Query too long (over ${MAX_QUERY_LENGTH} characters)`)];
    if (operationName != null && typeof operationName !== 'string') return [badRequest('operationName must be a string')];
    if (variables != null && (typeof variables !== 'object' || Array.isArray(variables))) return [badRequest('variables must be an object')];
    const document = this.document(query);
    if (Array.isArray(document)) return document as readonly GraphQLError[];
    const definition = getOperationAST(document as DocumentNode, operationName ?? undefined);
    if (!definition) return [badRequest('Unable to identify the operation (give operationName)')];
    return {
      document: document as DocumentNode,
      operationName: operationName ?? undefined,
      variables: (variables ?? undefined) as Record<string, unknown> | undefined,
      kind: definition.operation,
    };
  }

  private document(query: string): DocumentNode | readonly GraphQLError[] {
    let entry = this.documents.get(query);
    if (entry === undefined) {
      try {
        const document = parse(query, { maxTokens: MAX_QUERY_TOKENS });
        const errors = validate(this.options.schema, document);
        entry = errors.length > 0 ? errors : document;
      } catch (error) {
        entry = [error instanceof GraphQLError ? error : new GraphQLError(String(error))];
      }
      if (this.documents.size >= Operations.DOCUMENTS_MAX) this.documents.delete(this.documents.keys().next().value!);
      this.documents.set(query, entry);
    }
    return entry;
  }

  /** Runs a query or mutation; the result is masked. */
  async execute(operation: PreparedOperation, context: Context): Promise<ExecutionResult> {
    return this.mask(
      await execute({
        schema: this.options.schema,
        document: operation.document,
        operationName: operation.operationName,
        variableValues: operation.variables,
        contextValue: context,
      }),
    );
  }

  mask(result: ExecutionResult): ExecutionResult {
    return result.errors ? { ...result, errors: result.errors.map((error) => this.options.maskError(error)) } : result;
  }

  /**
   * Starts a subscription: argument coercion and the root field's `subscribe`
   * resolver (which authorizes and starts the stream), as graphql-js's
   * `subscribe` does. A {@link LiveStream} gets the transport's sink (the fast
   * lane). Any other async iterator is served too, on the slow path: each
   * event executed for this subscriber alone. Returns the errors instead when
   * it could not start.
   */
  async subscribe(
    operation: PreparedOperation,
    context: Context,
    makeSink: (renderer: SharedRenderer) => Sink,
  ): Promise<RunningSubscription | ExecutionResult> {
    const source = await createSourceEventStream({
      schema: this.options.schema,
      document: operation.document,
      operationName: operation.operationName,
      variableValues: operation.variables,
      contextValue: context,
    });
    if (source instanceof LiveStream) {
      source.attach(makeSink(this.options.renderers.for(operation.document, operation.operationName, operation.variables)));
      return source; // its own handle: no per-subscription wrapper (memory per subscription is a product target)
    }
    if (!(Symbol.asyncIterator in source)) return this.mask(source as ExecutionResult);
    return this.iterate(source as AsyncIterable<unknown>, makeSink(this.options.renderers.unshared(operation)));
  }

  private iterate(source: AsyncIterable<unknown>, sink: Sink): RunningSubscription {
    const iterator = source[Symbol.asyncIterator]();
    let cancelled = false;
    void (async () => {
      try {
        for (;;) {
          const { value, done } = await iterator.next();
          if (done || cancelled) break;
          await sink.next(value, undefined);
        }
        if (!cancelled) sink.end(undefined);
      } catch (error) {
        if (cancelled) return;
        this.options.onError(error, 'subscription source');
        sink.end(this.options.maskError(error instanceof GraphQLError ? error : new GraphQLError('Unexpected error.', { originalError: error as Error })));
      }
    })();
    return {
      cancel: () => {
        cancelled = true;
        void iterator.return?.();
      },
    };
  }
}
