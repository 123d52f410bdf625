import { Kind, type DocumentNode, type SelectionNode, type ValueNode } from 'graphql';
import { badInput, type ChatError } from '../errors.js';

/**
 * Text that PostgreSQL cannot store as sent (README, "Text"): NUL is refused
 * by a `text` column (22021), and a lone UTF-16 surrogate has no UTF-8 form,
 * so the driver would store U+FFFD instead and the live copy would differ
 * from the stored one. Both are refused before anything runs.
 */
const NUL = /\0/;

/** Why `text` cannot be stored as sent, or undefined when it can. */
export function unstorable(text: string): string | undefined {
  if (NUL.test(text)) return 'contains NUL (U+0000)';
  if (!(text as string & { isWellFormed(): boolean }).isWellFormed()) return 'contains a lone UTF-16 surrogate';
  return undefined;
}

/** Throws BAD_USER_INPUT naming `field` when `text` cannot be stored as sent. */
export function storableText(text: string, field: string): string {
  const reason = unstorable(text);
  if (reason) throw badInput(`${field} ${reason}`, field);
  return text;
}

/**
 * The stored form of human text (message bodies, titles, display names):
 * Unicode NFC, so canonically equivalent input (a precomposed "é" or "e" +
 * U+0301, as some keyboards and platforms send) is stored, delivered,
 * compared and counted alike. Identifiers (ids, clientMessageId, cursors)
 * are compared exactly and never normalized.
 */
export function humanText(text: string, field: string): string {
  return storableText(text, field).normalize('NFC');
}

function badValue(value: unknown): string | undefined {
  if (typeof value === 'string') return unstorable(value);
  if (Array.isArray(value)) {
    for (const item of value) {
      const reason = badValue(item);
      if (reason) return reason;
    }
    return undefined;
  }
  if (value !== null && typeof value === 'object') {
    for (const item of Object.values(value)) {
      const reason = badValue(item);
      if (reason) return reason;
    }
  }
  return undefined;
}

function badLiteral(node: ValueNode): string | undefined {
  switch (node.kind) {
    case Kind.STRING:
      return unstorable(node.value);
    case Kind.LIST:
      for (const item of node.values) {
        const reason = badLiteral(item);
        if (reason) return reason;
      }
      return undefined;
    case Kind.OBJECT:
      for (const field of node.fields) {
        const reason = badLiteral(field.value);
        if (reason) return reason;
      }
      return undefined;
    default:
      return undefined;
  }
}

/** For each variable, the first argument (by name) it is passed to: what `extensions.field` names. */
export function argumentsOfVariables(document: DocumentNode): Map<string, string> {
  const out = new Map<string, string>();
  const visitArguments = (args: readonly { name: { value: string }; value: ValueNode }[] | undefined) => {
    for (const argument of args ?? []) for (const name of variablesIn(argument.value, [])) if (!out.has(name)) out.set(name, argument.name.value);
  };
  const walk = (selections: readonly SelectionNode[]) => {
    for (const selection of selections) {
      if (selection.kind === Kind.FIELD) visitArguments(selection.arguments);
      for (const directive of selection.directives ?? []) visitArguments(directive.arguments);
      if (selection.kind !== Kind.FRAGMENT_SPREAD && selection.selectionSet) walk(selection.selectionSet.selections);
    }
  };
  for (const definition of document.definitions) {
    if (definition.kind === Kind.OPERATION_DEFINITION || definition.kind === Kind.FRAGMENT_DEFINITION) walk(definition.selectionSet.selections);
  }
  return out;
}

/** Variables a value uses, at any nesting. */
function variablesIn(node: ValueNode, out: string[]): string[] {
  if (node.kind === Kind.VARIABLE) out.push(node.name.value);
  else if (node.kind === Kind.LIST) for (const item of node.values) variablesIn(item, out);
  else if (node.kind === Kind.OBJECT) for (const field of node.fields) variablesIn(field.value, out);
  return out;
}

/**
 * Every string an operation carries, in its text and its variables, checked
 * at once before anything runs: one unstorable string refuses the whole
 * operation with BAD_USER_INPUT naming the argument (or `$variable`), so no
 * mutation of it has run. The services check again (defence in depth).
 */
export function checkInputText(document: DocumentNode, variables: Record<string, unknown> | undefined): ChatError | undefined {
  let found: ChatError | undefined;
  const visitArguments = (args: readonly { name: { value: string }; value: ValueNode }[] | undefined) => {
    for (const argument of args ?? []) {
      const reason = badLiteral(argument.value);
      if (reason) {
        found = badInput(`${argument.name.value} ${reason}`, argument.name.value);
        return;
      }
    }
  };
  // A plain walk (no visitor machinery): this runs on every request.
  const walk = (selections: readonly SelectionNode[]) => {
    for (const selection of selections) {
      if (found) return;
      if (selection.kind === Kind.FIELD) visitArguments(selection.arguments);
      for (const directive of selection.directives ?? []) visitArguments(directive.arguments);
      if (selection.kind !== Kind.FRAGMENT_SPREAD && selection.selectionSet) walk(selection.selectionSet.selections);
    }
  };
  for (const definition of document.definitions) {
    if (definition.kind === Kind.OPERATION_DEFINITION || definition.kind === Kind.FRAGMENT_DEFINITION) {
      for (const directive of definition.directives ?? []) visitArguments(directive.arguments);
      if (definition.kind === Kind.OPERATION_DEFINITION) {
        for (const variable of definition.variableDefinitions ?? []) {
          const reason = variable.defaultValue && badLiteral(variable.defaultValue);
          if (reason && !found) found = badInput(`$${variable.variable.name.value} ${reason}`, `$${variable.variable.name.value}`);
        }
      }
      walk(definition.selectionSet.selections);
    }
    if (found) return found;
  }
  for (const [name, value] of Object.entries(variables ?? {})) {
    const reason = badValue(value);
    if (reason) {
      const field = argumentsOfVariables(document).get(name) ?? `$${name}`;
      return badInput(`${field} ${reason}`, field);
    }
  }
  return undefined;
}
