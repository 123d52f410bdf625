import { documentIds } from './generated/document-ids.js';

const OPERATION_NAME = /^\s*(?:query|mutation|subscription)\s+([_A-Za-z][_0-9A-Za-z]*)/m;

/**
 * The trusted document id of one of the SDK's own operations (README,
 * "Trusted documents"): the server registers each of them under the sha256
 * of its text, so the SDK can send the id instead of the text. Undefined for
 * any other document (sent as text).
 */
export function documentIdOf(query: string): string | undefined {
  const name = OPERATION_NAME.exec(query)?.[1];
  return name === undefined ? undefined : documentIds[name];
}
