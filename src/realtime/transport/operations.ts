import { createSourceEventStream, execute, GraphQLError, type ExecutionResult, type GraphQLSchema } from 'graphql';
import type { Context } from '../../context.js';
import type { OperationGuard, OperationRequest, PreparedOperation } from '../../security/guard.js';
import type { Renderers, SharedRenderer } from '../render.js';
import { LiveStream } from '../streams/live-stream.js';
import type { Sink } from './sink.js';

export type { OperationRequest, PreparedOperation } from '../../security/guard.js';

/** A subscription that started: the transport cancels it when the client goes away. */
export interface RunningSubscription {
  cancel(): void;
}

export interface OperationsOptions {
  schema: GraphQLSchema;
  /** The limits and checks every transport shares (src/security/guard.ts). */
  guard: OperationGuard;
  renderers: Renderers;
  /** The app's error masking (counts errors, logs unexpected ones). */
  maskError: (error: GraphQLError) => GraphQLError;
  onError: (error: unknown, what: string) => void;
}

/**
 * How every realtime transport runs an operation (docs/architecture.md,
 * "Transports"): the same gate as HTTP (limits, document cache, validation),
 * masking and subscription start, so WebSocket and SSE behave alike.
 */
export class Operations {
  constructor(private readonly options: OperationsOptions) {}

  /** The shared gate (src/security/guard.ts): the prepared operation, or the errors that refuse it. */
  prepare(request: OperationRequest): PreparedOperation | readonly GraphQLError[] {
    return this.options.guard.prepare(request);
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
    let source: Awaited<ReturnType<typeof createSourceEventStream>>;
    try {
      source = await createSourceEventStream({
        schema: this.options.schema,
        document: operation.document,
        operationName: operation.operationName,
        variableValues: operation.variables,
        contextValue: context,
      });
    } catch (error) {
      // graphql-js rethrows what is not a GraphQLError: answer it (masked) rather than let it escape the transport.
      return this.mask({ errors: [error instanceof GraphQLError ? error : new GraphQLError('Unexpected error.', { originalError: error as Error })] });
    }
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
