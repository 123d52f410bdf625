import { createHash, randomUUID } from 'node:crypto';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: string): boolean {
  return UUID.test(value);
}

export const newId = (): string => randomUUID();

/**
 * A direct conversation's id is a function of the (sorted) pair of users, so
 * "one DM per pair" holds without a cross-shard uniqueness check (docs/architecture.md, "Storage").
 * It is a UUID of version 8 (custom) built from a SHA-256 of the pair.
 */
export function directConversationId(a: string, b: string): string {
  const [first, second] = a < b ? [a, b] : [b, a];
  const hash = createHash('sha256').update(`direct\n${first}\n${second}`).digest();
  hash[6] = (hash[6]! & 0x0f) | 0x80;
  hash[8] = (hash[8]! & 0x3f) | 0x80;
  const hex = hash.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
