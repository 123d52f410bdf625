import { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { ErrorCode } from '../errors.js';
import type { OperationGuard, PreparedOperation } from './guard.js';

/**
 * HTTP statuses of refused requests, as GraphQL over HTTP asks: a request
 * that is not GraphQL at all is 400 whatever the client accepts; a document
 * that fails (parse, validation, a limit, its variables) is 400 for
 * `application/graphql-response+json` and 200 for `application/json`
 * (Yoga's `spec` flag). Yoga strips `extensions.http` before responding.
 */
function withHttpStatus(error: GraphQLError): GraphQLError {
  const spec = error.extensions.code !== ErrorCode.BAD_REQUEST;
  (error.extensions as Record<string, unknown>).http = { status: 400, spec };
  return error;
}

/**
 * Puts Yoga behind the same gate as the realtime transports
 * (src/security/guard.ts): a refused request never reaches Yoga's parser,
 * validation or execution; an accepted one is parsed and validated once,
 * by the gate, and Yoga reuses that.
 */
export function useOperationGuard(guard: OperationGuard, maskError: (error: unknown) => GraphQLError): Plugin {
  const prepared = new WeakMap<object, PreparedOperation>();
  return {
    onRequestParse({ requestParser, setRequestParser }) {
      // Yoga's parsers JSON.parse what the client sent (a GET's variables, a
      // form's fields) and let a SyntaxError escape, which would be masked as
      // INTERNAL_SERVER_ERROR: it is the request that is malformed.
      if (!requestParser) return;
      setRequestParser(async (request) => {
        try {
          return await requestParser(request);
        } catch (error) {
          if (error instanceof GraphQLError) throw error;
          throw new GraphQLError(`Malformed request: ${error instanceof Error ? error.message : String(error)}`, {
            extensions: { code: ErrorCode.BAD_REQUEST, http: { status: 400 } },
          });
        }
      });
    },
    onParams({ params, request, setParams, setResult }) {
      let documentId = (params as { documentId?: unknown }).documentId;
      // GET: Yoga's parser keeps only the standard parameters.
      if (documentId === undefined && request.method === 'GET') documentId = new URL(request.url).searchParams.get('documentId') ?? undefined;
      const result = guard.prepare({ ...params, documentId });
      if (Array.isArray(result)) {
        setResult({ errors: (result as readonly GraphQLError[]).map((error) => withHttpStatus(maskError(error))) });
        // Yoga's own parameter check runs after this hook; give it nothing to object to.
        setParams({ query: '' });
        return;
      }
      const operation = result as PreparedOperation;
      const next = { query: operation.query, operationName: operation.operationName, variables: operation.variables, extensions: params.extensions };
      prepared.set(next, operation);
      setParams(next);
    },
    onParse({ context, setParsedDocument }) {
      const operation = prepared.get((context as { params?: object }).params ?? {});
      if (operation) setParsedDocument(operation.document);
    },
    onValidate({ context, setResult }) {
      // Validated by the gate already (the same rules, cached by text).
      if (prepared.has((context as { params?: object }).params ?? {})) setResult([]);
    },
    onResponse({ response, setResponse, fetchAPI }) {
      // Yoga answers a few refusals (415 unsupported media type, 406 not
      // acceptable, 404 elsewhere) without a body: give them a coded one.
      if (response.status < 400 || response.body !== null) return;
      const code = response.status === 404 ? ErrorCode.NOT_FOUND : ErrorCode.BAD_REQUEST;
      const headers = new fetchAPI.Headers(response.headers);
      headers.set('content-type', 'application/json; charset=utf-8');
      setResponse(
        new fetchAPI.Response(JSON.stringify({ errors: [{ message: response.statusText || `HTTP ${response.status}`, extensions: { code } }] }), {
          status: response.status,
          statusText: response.statusText,
          headers,
        }),
      );
    },
  };
}
