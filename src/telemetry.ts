import { randomUUID } from 'node:crypto';
import { getOperationAST, type DocumentNode, type ExecutionResult, type OperationDefinitionNode } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';

const requestIds = new WeakMap<Request, string>();
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The request's id: the caller's `x-request-id` when it is sane, else a new one. */
export function requestIdOf(request: Request): string {
  let id = requestIds.get(request);
  if (!id) {
    const given = request.headers.get('x-request-id');
    id = given && REQUEST_ID.test(given) ? given : randomUUID();
    requestIds.set(request, id);
  }
  return id;
}

function rootFields(operation: OperationDefinitionNode | null | undefined): string[] {
  if (!operation) return [];
  return operation.selectionSet.selections.flatMap((selection) => (selection.kind === 'Field' ? [selection.name.value] : []));
}

export function describe(document: DocumentNode, operationName: string | null | undefined) {
  const operation = getOperationAST(document, operationName);
  return { type: operation?.operation ?? 'unknown', name: operation?.name?.value, fields: rootFields(operation) };
}

function idsOf(context: { request?: Request }): Record<string, string> {
  return context.request ? { requestId: requestIdOf(context.request) } : {};
}

export type OperationSummary = ReturnType<typeof describe>;

/** Logs one finished operation and records its latency: names, ids and error codes only. */
export function recordOperation(
  logger: Logger,
  metrics: Metrics,
  ids: Record<string, string>,
  operation: OperationSummary,
  seconds: number,
  errors: string[] | undefined,
): void {
  for (const field of operation.fields) metrics.operation(operation.type, field, seconds);
  const line = { ...ids, operation, ms: Math.round(seconds * 1000), ...(errors && { errors }) };
  if (errors) logger.info(line, 'operation failed');
  else logger.debug(line, 'operation');
}

/**
 * One log line and one latency observation per GraphQL operation, with the
 * request id (HTTP, echoed in `x-request-id`) or connection and operation ids
 * (WebSocket). Names and error codes only: never variables, bodies or tokens.
 */
export function useOperationTelemetry(logger: Logger, metrics: Metrics): Plugin {
  return {
    onResponse({ request, response }) {
      response.headers.set('x-request-id', requestIdOf(request));
    },
    onExecute({ args }) {
      const started = performance.now();
      const operation = describe(args.document, args.operationName);
      return {
        onExecuteDone({ result }) {
          const errors = (result as ExecutionResult).errors?.map((error) => String(error.extensions?.code ?? 'UNKNOWN'));
          recordOperation(logger, metrics, idsOf(args.contextValue as never), operation, (performance.now() - started) / 1000, errors);
        },
      };
    },
    onSubscribe({ args }) {
      const operation = describe(args.document, args.operationName);
      logger.debug({ ...idsOf(args.contextValue as never), operation }, 'subscription started');
    },
  };
}
