import {
  getNamedType,
  getNullableType,
  isAbstractType,
  isCompositeType,
  isEnumType,
  isInputObjectType,
  isInterfaceType,
  isListType,
  isObjectType,
  Kind,
  SchemaMetaFieldDef,
  TypeMetaFieldDef,
  TypeNameMetaFieldDef,
  type DirectiveNode,
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLField,
  type GraphQLNamedType,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type ValueNode,
} from 'graphql';
import { ChatError, ErrorCode } from '../errors.js';

/**
 * The limits every operation is held to, on every transport (HTTP, SSE,
 * WebSocket): docs/architecture.md, "Operation limits". Each is refused with
 * its own error code before anything runs.
 */
export interface OperationLimits {
  /** Characters of query text. */
  maxLength: number;
  /** Lexical tokens (graphql-js stops parsing past this: parsing stays cheap). */
  maxTokens: number;
  /** Nested fields, through fragments, introspection included. */
  maxDepth: number;
  /** Aliased fields, counted once per place a fragment is spread. */
  maxAliases: number;
  /** Directives, counted once per place a fragment is spread. */
  maxDirectives: number;
  /** Estimated objects produced (see {@link LimitMeter}). */
  maxCost: number;
  /**
   * Selections of one response name in one selection set, fragments
   * flattened in. Execution merges them, but validation compares every pair
   * (and their subtrees): 490 × `viewer { name }` took 80 ms to validate.
   */
  maxRepeats: number;
}

export const DEFAULT_LIMITS: OperationLimits = {
  maxLength: 16 * 1024,
  maxTokens: 2000,
  // The deepest path of the schema's own types is 8 (conversations → edges →
  // node → members → edges → node → user → name); GraphiQL's introspection
  // query is 15 deep (its type references nest `ofType` nine times).
  maxDepth: 15,
  maxAliases: 30,
  maxDirectives: 20,
  // The SDK's costliest operation at its largest page is about 2,000
  // (`members(first: 500)`); GraphiQL's full introspection query about 6,200.
  // `conversations(first: 100)` → `members(first: 500)` → `user` is 150,000.
  maxCost: 10_000,
  // The SDK repeats a name at most 3 times in a set (inbox's `conversationId` in three type conditions).
  maxRepeats: 10,
};

/** Assumed size of a page whose `first` / `last` is not given (every default of this API is at most this). */
export const DEFAULT_PAGE_SIZE = 100;
/** Assumed size of any other list of objects (none in the schema today but pages' own lists). */
export const DEFAULT_LIST_SIZE = 10;

/** What one operation uses, as measured against the limits. */
export interface Measure {
  depth: number;
  aliases: number;
  directives: number;
  cost: number;
  /** Most selections of one response name in one selection set, fragments flattened into it. */
  repeats: number;
}

/** A selection set's measure, with the response names it selects (fragments flattened in) and how often. */
interface SetMeasure extends Measure {
  names: Map<string, number>;
}

interface FragmentMeasure extends SetMeasure {
  visiting: boolean;
}

const PAGE_ARGUMENTS = ['first', 'last'];

function limitError(code: ErrorCode, what: string, limit: number, found: number): ChatError {
  const shown = Number.isFinite(found) && found < Number.MAX_SAFE_INTEGER ? found : Number.MAX_SAFE_INTEGER;
  return new ChatError(code, `${what} ${shown} exceeds the limit of ${limit}`, { limit, found: shown });
}

/**
 * Measures an operation's depth, aliases, directives and cost in one walk,
 * with each fragment measured once and multiplied where it is spread: a
 * "fragment bomb" (fragments spreading fragments twice, 2^n fields) costs
 * a linear walk to refuse. Cycles (rejected later by validation) count
 * nothing. Introspection is measured like any other field: its lists have
 * the schema's own sizes.
 *
 * Cost: each field whose type is an object (or union, interface) counts 1;
 * scalars count nothing; a field taking `first` or `last` multiplies what
 * is below it by that number (from the literal or the variable; 100 when
 * absent); lists of a page (`edges`, `messages`) are already counted by
 * that; other lists count as 10. So `conversations(first: 100)` →
 * `members(first: 500)` → `user` costs about 100 × 500 × 3.
 */
export class LimitMeter {
  private readonly pageTypes = new Set<string>();
  private readonly introspectionSizes = new Map<string, number>();

  constructor(
    private readonly schema: GraphQLSchema,
    readonly limits: OperationLimits = DEFAULT_LIMITS,
  ) {
    // Introspection lists count as their mean size in this schema (rounded
    // up): `__schema { types { fields } }` then costs what it produces, and a
    // query that recurses through `fields { type { fields … } }` still
    // multiplies at every level.
    const types = Object.values(schema.getTypeMap());
    const mean = (counts: number[]) => (counts.length === 0 ? 1 : Math.ceil(counts.reduce((a, b) => a + b, 0) / counts.length));
    const fieldCounts: number[] = [];
    const argCounts: number[] = [];
    const inputFieldCounts: number[] = [];
    const enumValueCounts: number[] = [];
    const interfaceCounts: number[] = [];
    const possibleCounts: number[] = [];
    for (const type of types) {
      if (isObjectType(type) || isInterfaceType(type)) {
        const fields = Object.values(type.getFields());
        fieldCounts.push(fields.length);
        interfaceCounts.push(type.getInterfaces().length);
        for (const field of fields) {
          argCounts.push(field.args.length);
          if (field.args.some((arg) => PAGE_ARGUMENTS.includes(arg.name))) this.pageTypes.add(getNamedType(field.type).name);
        }
      }
      if (isAbstractType(type)) possibleCounts.push(schema.getPossibleTypes(type).length);
      if (isEnumType(type)) enumValueCounts.push(type.getValues().length);
      if (isInputObjectType(type)) inputFieldCounts.push(Object.keys(type.getFields()).length);
    }
    for (const directive of schema.getDirectives()) argCounts.push(directive.args.length);
    const sizes: Record<string, number> = {
      '__Schema.types': types.length,
      '__Schema.directives': schema.getDirectives().length,
      '__Type.fields': mean(fieldCounts),
      '__Type.inputFields': mean(inputFieldCounts),
      '__Type.enumValues': mean(enumValueCounts),
      '__Type.interfaces': mean(interfaceCounts),
      '__Type.possibleTypes': mean(possibleCounts),
      '__Field.args': mean(argCounts),
      '__Directive.args': mean(argCounts),
    };
    for (const [key, size] of Object.entries(sizes)) this.introspectionSizes.set(key, Math.max(1, size));
  }

  /** The errors of an operation over any limit (empty when it is within all of them). */
  check(document: DocumentNode, operation: OperationDefinitionNode, variables: Record<string, unknown> | undefined): ChatError[] {
    const measure = this.measure(document, operation, variables);
    const { limits } = this;
    const errors: ChatError[] = [];
    if (measure.depth > limits.maxDepth) errors.push(limitError(ErrorCode.DEPTH_LIMIT_EXCEEDED, 'Depth', limits.maxDepth, measure.depth));
    if (measure.aliases > limits.maxAliases) errors.push(limitError(ErrorCode.ALIAS_LIMIT_EXCEEDED, 'Aliases', limits.maxAliases, measure.aliases));
    if (measure.directives > limits.maxDirectives) {
      errors.push(limitError(ErrorCode.DIRECTIVE_LIMIT_EXCEEDED, 'Directives', limits.maxDirectives, measure.directives));
    }
    if (measure.cost > limits.maxCost) errors.push(limitError(ErrorCode.COST_LIMIT_EXCEEDED, 'Estimated cost', limits.maxCost, measure.cost));
    if (measure.repeats > limits.maxRepeats) {
      errors.push(limitError(ErrorCode.FIELD_LIMIT_EXCEEDED, 'Selections of one field in one place', limits.maxRepeats, measure.repeats));
    }
    return errors;
  }

  measure(document: DocumentNode, operation: OperationDefinitionNode, variables: Record<string, unknown> | undefined): Measure {
    const fragments = new Map<string, FragmentDefinitionNode>();
    for (const definition of document.definitions) if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
    const defaults = new Map<string, ValueNode>();
    for (const definition of operation.variableDefinitions ?? []) {
      if (definition.defaultValue) defaults.set(definition.variable.name.value, definition.defaultValue);
    }
    const memo = new Map<string, FragmentMeasure>();
    const schema = this.schema;
    const rootType =
      operation.operation === 'query' ? schema.getQueryType() : operation.operation === 'mutation' ? schema.getMutationType() : schema.getSubscriptionType();

    const intValue = (node: ValueNode | undefined): number | undefined => {
      if (!node) return undefined;
      if (node.kind === Kind.INT) return Number(node.value);
      if (node.kind === Kind.VARIABLE) {
        const value = variables?.[node.name.value];
        if (typeof value === 'number') return value;
        if (value === undefined) return intValue(defaults.get(node.name.value));
      }
      return undefined;
    };

    const fieldDef = (parent: GraphQLNamedType | undefined, name: string): GraphQLField<unknown, unknown> | undefined => {
      if (name === '__typename') return TypeNameMetaFieldDef;
      if (parent && parent === schema.getQueryType()) {
        if (name === '__schema') return SchemaMetaFieldDef;
        if (name === '__type') return TypeMetaFieldDef;
      }
      if (parent && (isObjectType(parent) || isInterfaceType(parent))) return parent.getFields()[name];
      return undefined;
    };

    const multiplier = (parent: GraphQLNamedType | undefined, def: GraphQLField<unknown, unknown> | undefined, node: FieldNode): number => {
      if (!def) return 1;
      if (def.args.some((arg) => PAGE_ARGUMENTS.includes(arg.name))) {
        let size: number | undefined;
        for (const argument of node.arguments ?? []) {
          if (PAGE_ARGUMENTS.includes(argument.name.value)) size = Math.max(size ?? 0, intValue(argument.value) ?? DEFAULT_PAGE_SIZE);
        }
        size ??= DEFAULT_PAGE_SIZE;
        return Number.isFinite(size) ? Math.max(1, Math.floor(size)) : DEFAULT_PAGE_SIZE;
      }
      if (!isListType(getNullableType(def.type))) return 1;
      if (parent && this.pageTypes.has(parent.name)) return 1;
      if (parent) {
        const introspection = this.introspectionSizes.get(`${parent.name}.${def.name}`);
        if (introspection !== undefined) return introspection;
      }
      return DEFAULT_LIST_SIZE;
    };

    const directivesOf = (directives: readonly DirectiveNode[] | undefined) => directives?.length ?? 0;

    const empty = (): SetMeasure => ({ depth: 0, aliases: 0, directives: 0, cost: 0, repeats: 0, names: new Map() });
    const addNames = (into: Map<string, number>, from: Map<string, number>) => {
      for (const [name, count] of from) into.set(name, (into.get(name) ?? 0) + count);
    };

    const walk = (selectionSet: SelectionSetNode, parent: GraphQLNamedType | undefined): SetMeasure => {
      const total = empty();
      for (const selection of selectionSet.selections) {
        total.directives += directivesOf(selection.directives);
        if (selection.kind === Kind.FIELD) {
          const def = fieldDef(parent, selection.name.value);
          const type = def ? getNamedType(def.type) : undefined;
          const own = type && isCompositeType(type) ? 1 : 0;
          const key = selection.alias?.value ?? selection.name.value;
          total.names.set(key, (total.names.get(key) ?? 0) + 1);
          if (selection.alias) total.aliases += 1;
          if (selection.selectionSet) {
            const below = walk(selection.selectionSet, type);
            total.depth = Math.max(total.depth, 1 + below.depth);
            total.aliases += below.aliases;
            total.directives += below.directives;
            total.cost += own + multiplier(parent, def, selection) * below.cost;
            total.repeats = Math.max(total.repeats, below.repeats);
          } else {
            total.depth = Math.max(total.depth, 1);
            total.cost += own;
          }
        } else {
          let below: SetMeasure;
          if (selection.kind === Kind.INLINE_FRAGMENT) {
            const type = selection.typeCondition ? schema.getType(selection.typeCondition.name.value) : parent;
            below = walk(selection.selectionSet, type ?? undefined);
          } else {
            below = fragment(selection.name.value);
          }
          total.depth = Math.max(total.depth, below.depth);
          total.aliases += below.aliases;
          total.directives += below.directives;
          total.cost += below.cost;
          total.repeats = Math.max(total.repeats, below.repeats);
          // Fragments merge into the set they are spread in: their fields are compared with its fields.
          addNames(total.names, below.names);
        }
      }
      for (const count of total.names.values()) total.repeats = Math.max(total.repeats, count);
      return total;
    };

    const fragment = (name: string): SetMeasure => {
      const known = memo.get(name);
      if (known) return known.visiting ? empty() : known;
      const definition = fragments.get(name);
      if (!definition) return empty();
      memo.set(name, { ...empty(), visiting: true });
      const measured = walk(definition.selectionSet, schema.getType(definition.typeCondition.name.value) ?? undefined);
      measured.directives += directivesOf(definition.directives);
      memo.set(name, { ...measured, visiting: false });
      return measured;
    };

    const { names: _names, ...measured } = walk(operation.selectionSet, rootType ?? undefined);
    measured.directives += directivesOf(operation.directives);
    for (const definition of operation.variableDefinitions ?? []) measured.directives += directivesOf(definition.directives);
    return measured;
  }
}
