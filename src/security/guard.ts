import {
  getOperationAST,
  getVariableValues,
  GraphQLError,
  Kind,
  parse,
  specifiedRules,
  validate,
  type DocumentNode,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type OperationTypeNode,
  type SelectionNode,
} from 'graphql';
import { badInput, badRequest, ChatError, ErrorCode } from '../errors.js';
import { DEFAULT_LIMITS, LimitMeter, type OperationLimits } from './limits.js';
import { argumentsOfVariables, checkInputText } from './text.js';
import type { TrustedDocuments } from './trusted-documents.js';

/** An operation as a client sends it: an HTTP or SSE request's parameters, a graphql-ws `subscribe` payload. */
export interface OperationRequest {
  query?: unknown;
  operationName?: unknown;
  variables?: unknown;
  /** A trusted document's id, instead of `query`. */
  documentId?: unknown;
  /** `persistedQuery.sha256Hash` is accepted as a document id too (Apollo's format). */
  extensions?: unknown;
}

/** A request that passed every check: ready to execute. */
export interface PreparedOperation {
  document: DocumentNode;
  /** The document's text (a trusted document's, when the request named one). */
  query: string;
  operationName: string | undefined;
  variables: Record<string, unknown> | undefined;
  kind: OperationTypeNode;
}

/** What a document's text yields, cached: its parse and its validation against the schema. */
interface DocumentEntry {
  document?: DocumentNode;
  errors?: readonly GraphQLError[];
  /** Validation errors, computed the first time an operation of it passes the limits. */
  validation?: readonly GraphQLError[];
}

/**
 * The cache holds at most this many documents and this many characters of
 * text (their trees are some tens of times larger): bounded memory whatever
 * stream of distinct documents arrives.
 */
const DOCUMENTS_MAX = 500;
const DOCUMENT_CHARACTERS_MAX = 1_000_000;
/** graphql-js's message when `maxTokens` stops the parser. */
const TOO_MANY_TOKENS = /Document contains more tha[nt] \d+ tokens/;

const isObject = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);

/**
 * The one gate every operation passes, on every transport (HTTP through the
 * Yoga plugin in src/http/yoga.ts, SSE and WebSocket through
 * src/realtime/transport/operations.ts), cheapest check first, so that a
 * refusal costs little and means the same everywhere (docs/architecture.md,
 * "Operation limits"):
 *
 * 1. the request's shape (BAD_REQUEST), a trusted document's id
 *    (PERSISTED_DOCUMENT_NOT_FOUND / _REQUIRED);
 * 2. the text's length (SIZE_LIMIT_EXCEEDED), then parsing with a token
 *    limit (TOKEN_LIMIT_EXCEEDED, GRAPHQL_PARSE_FAILED);
 * 3. depth, aliases, directives and cost, in one walk (…_LIMIT_EXCEEDED),
 *    before the schema validation whose worst cases are quadratic;
 * 4. validation (GRAPHQL_VALIDATION_FAILED), variables (BAD_USER_INPUT,
 *    naming the argument) and unstorable text (BAD_USER_INPUT).
 *
 * Nothing has run when any of them refuses. Parsing and validation are
 * cached by text: clients send the same few documents.
 */
export class OperationGuard {
  private readonly documents = new Map<string, DocumentEntry>();
  private cachedCharacters = 0;
  readonly meter: LimitMeter;

  constructor(
    private readonly schema: GraphQLSchema,
    private readonly trusted: TrustedDocuments | undefined,
    readonly limits: OperationLimits = DEFAULT_LIMITS,
  ) {
    this.meter = new LimitMeter(schema, limits);
  }

  prepare(request: OperationRequest): PreparedOperation | readonly GraphQLError[] {
    const { operationName, variables, extensions } = request;
    if (operationName != null && typeof operationName !== 'string') return [badRequest('operationName must be a string')];
    if (variables != null && !isObject(variables)) return [badRequest('variables must be an object')];
    if (extensions != null && !isObject(extensions)) return [badRequest('extensions must be an object')];

    const query = this.textOf(request);
    if (query instanceof GraphQLError) return [query];
    if (query.length > this.limits.maxLength) {
      return [new ChatError(ErrorCode.SIZE_LIMIT_EXCEEDED, `Query too long (over ${this.limits.maxLength} characters)`, { limit: this.limits.maxLength, found: query.length })];
    }
    const entry = this.entry(query);
    if (entry.errors) return entry.errors;
    const document = entry.document!;

    const operation = getOperationAST(document, operationName ?? undefined);
    if (operation) {
      const refused = this.meter.check(document, operation, (variables ?? undefined) as Record<string, unknown> | undefined);
      if (refused.length > 0) return refused;
    }
    entry.validation ??= this.validate(document);
    if (entry.validation.length > 0) return entry.validation;
    if (!operation) return [badRequest(operationName ? `No operation named "${operationName}"` : 'The document has several operations: give operationName')];

    if (operation.operation === 'subscription' && skipsRootField(document, operation)) {
      // GraphQL's later spec forbids it (graphql-js 16 does not check): with its one field skipped, a
      // subscription has nothing to run, and graphql-js throws instead of answering.
      return [new GraphQLError('A subscription\'s root field cannot be skipped (@skip or @include)', { nodes: operation, extensions: { code: ErrorCode.GRAPHQL_VALIDATION_FAILED } })];
    }
    const vars = (variables ?? undefined) as Record<string, unknown> | undefined;
    const coercion = this.coerce(document, operation, vars);
    if (coercion) return coercion;
    const text = checkInputText(document, vars);
    if (text) return [text];
    return { document, query, operationName: operationName ?? undefined, variables: vars, kind: operation.operation };
  }

  /** The text to run: the request's, or its trusted document's. */
  private textOf(request: OperationRequest): string | GraphQLError {
    const { query } = request;
    const persisted = isObject(request.extensions) && isObject(request.extensions.persistedQuery) ? request.extensions.persistedQuery.sha256Hash : undefined;
    const id = request.documentId ?? persisted;
    if (id != null) {
      if (typeof id !== 'string') return badRequest('documentId must be a string');
      const text = this.trusted?.get(id);
      if (text === undefined) return new ChatError(ErrorCode.PERSISTED_DOCUMENT_NOT_FOUND, `No trusted document ${id.slice(0, 80)}`);
      if (query != null && query !== '' && query !== text) return badRequest('Send either query or documentId');
      return text;
    }
    if (typeof query !== 'string' || query === '') return badRequest('Missing query');
    if (this.trusted?.only && !this.trusted.has(query)) {
      return new ChatError(ErrorCode.PERSISTED_DOCUMENT_REQUIRED, 'This server runs trusted documents only: send documentId');
    }
    return query;
  }

  private entry(query: string): DocumentEntry {
    let entry = this.documents.get(query);
    if (entry === undefined) {
      try {
        entry = { document: parse(query, { maxTokens: this.limits.maxTokens, noLocation: false }) };
      } catch (error) {
        entry = { errors: [parseError(error, this.limits.maxTokens)] };
      }
      while (this.documents.size > 0 && (this.documents.size >= DOCUMENTS_MAX || this.cachedCharacters + query.length > DOCUMENT_CHARACTERS_MAX)) {
        const oldest = this.documents.keys().next().value!;
        this.documents.delete(oldest);
        this.cachedCharacters -= oldest.length;
      }
      this.documents.set(query, entry);
      this.cachedCharacters += query.length;
    }
    return entry;
  }

  private validate(document: DocumentNode): readonly GraphQLError[] {
    // Field suggestions ("Did you mean …?") stay: the schema is public.
    return validate(this.schema, document, specifiedRules, { maxErrors: 10 }).map(
      (error) =>
        new GraphQLError(error.message, {
          nodes: error.nodes,
          source: error.source,
          positions: error.positions,
          extensions: { code: ErrorCode.GRAPHQL_VALIDATION_FAILED },
        }),
    );
  }

  /** Variables as the schema coerces them: a missing or mistyped one is the client's input, named. */
  private coerce(document: DocumentNode, operation: OperationDefinitionNode, variables: Record<string, unknown> | undefined): GraphQLError[] | undefined {
    const definitions = operation.variableDefinitions ?? [];
    if (definitions.length === 0) return undefined;
    const coerced = getVariableValues(this.schema, definitions, variables ?? {}, { maxErrors: 10 });
    if (!coerced.errors) return undefined;
    const fields = argumentsOfVariables(document);
    return coerced.errors.map((error) => {
      const node = error.nodes?.[0];
      const name = node?.kind === Kind.VARIABLE_DEFINITION ? node.variable.name.value : undefined;
      const field = name ? (fields.get(name) ?? `$${name}`) : undefined;
      return badInput(error.message, field);
    });
  }
}

/** Whether a subscription's root selection uses @skip or @include (directly, or in its root fragments). */
function skipsRootField(document: DocumentNode, operation: OperationDefinitionNode): boolean {
  const fragments = new Map(document.definitions.flatMap((d) => (d.kind === Kind.FRAGMENT_DEFINITION ? [[d.name.value, d] as const] : [])));
  const seen = new Set<string>();
  const check = (selections: readonly SelectionNode[]): boolean =>
    selections.some((selection) => {
      if (selection.directives?.some((directive) => directive.name.value === 'skip' || directive.name.value === 'include')) return true;
      if (selection.kind === Kind.INLINE_FRAGMENT) return check(selection.selectionSet.selections);
      if (selection.kind === Kind.FRAGMENT_SPREAD && !seen.has(selection.name.value)) {
        seen.add(selection.name.value);
        const fragment = fragments.get(selection.name.value);
        return fragment ? check(fragment.selectionSet.selections) : false;
      }
      return false;
    });
  return check(operation.selectionSet.selections);
}

function parseError(error: unknown, maxTokens: number): GraphQLError {
  const message = error instanceof Error ? error.message : String(error);
  if (TOO_MANY_TOKENS.test(message)) {
    return new ChatError(ErrorCode.TOKEN_LIMIT_EXCEEDED, `Query has more than ${maxTokens} tokens`, { limit: maxTokens });
  }
  if (error instanceof GraphQLError) {
    return new GraphQLError(error.message, { source: error.source, positions: error.positions, extensions: { code: ErrorCode.GRAPHQL_PARSE_FAILED } });
  }
  return new GraphQLError(message, { extensions: { code: ErrorCode.GRAPHQL_PARSE_FAILED } });
}
