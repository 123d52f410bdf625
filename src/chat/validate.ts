import { isValidUserId } from '../auth.js';
import { badInput, notFound } from '../errors.js';
import { humanText } from '../security/text.js';
import { isUuid } from './ids.js';

/** Input rules shared by the services; each failure is a BAD_USER_INPUT naming its field. */

export function pageSize(value: number | null | undefined, field: string, fallback: number, max: number): number {
  if (value === null || value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw badInput(`${field} must be between 1 and ${max}`, field);
  }
  return value;
}

export function seqArgument(value: number, field: string): number {
  if (!Number.isInteger(value) || value < 0) throw badInput(`${field} must be a non-negative integer`, field);
  return value;
}

/** An id that is not even well-formed cannot name anything: NOT_FOUND, without a database round trip. */
export function conversationIdArgument(id: string): string {
  if (!isUuid(id)) throw notFound(`Conversation ${id} not found`);
  return id.toLowerCase();
}

export function userIdArgument(id: string): string {
  if (!isValidUserId(id)) throw notFound(`User ${id} not found`);
  return id;
}

/** A body as stored and delivered: storable, NFC (README, "Text"), not blank, at most `maxLength` characters. */
export function messageBody(input: string, maxLength: number): string {
  const body = humanText(input, 'body');
  if (body.trim() === '') throw badInput('Message body must not be empty', 'body');
  // Count code points, not UTF-16 units, so an emoji is one character.
  let length = 0;
  for (const _ of body) if (++length > maxLength) break;
  if (length > maxLength) throw badInput(`Message body must be at most ${maxLength} characters`, 'body');
  return body;
}

const CLIENT_MESSAGE_ID = /^[\x21-\x7e]{1,64}$/;

export function clientMessageId(value: string): string {
  if (!CLIENT_MESSAGE_ID.test(value)) {
    throw badInput('clientMessageId must be 1 to 64 printable ASCII characters', 'clientMessageId');
  }
  return value;
}

/** A change's fencing token (docs/architecture.md, "Retried changes: fencing tokens"): who makes the attempt and its number. */
export interface ChangeFence {
  /** The writer: one per client session, 1 to 64 printable ASCII characters (the SDK uses a random UUID). */
  writer: string;
  /** Grows with every attempt the writer makes: 1 to 2^31 - 1. */
  token: number;
}

/** A fence argument checked (`fence.writer`, `fence.token` named on refusal), or null when none was given. */
export function changeFence(value: ChangeFence | null | undefined): ChangeFence | null {
  if (value == null) return null;
  if (!CLIENT_MESSAGE_ID.test(value.writer)) throw badInput('fence.writer must be 1 to 64 printable ASCII characters', 'fence.writer');
  if (!Number.isSafeInteger(value.token) || value.token < 1) throw badInput('fence.token must be a positive integer', 'fence.token');
  return { writer: value.writer, token: value.token };
}

export function groupTitle(title: string): string {
  const trimmed = humanText(title, 'title').trim();
  if (trimmed === '' || trimmed.length > 200) throw badInput('title must be 1 to 200 characters', 'title');
  return trimmed;
}

export function userIdList(ids: readonly string[], field: string, max: number): string[] {
  const unique = [...new Set(ids)];
  if (unique.length > max) throw badInput(`${field} may name at most ${max} users at once`, field);
  for (const id of unique) userIdArgument(id);
  return unique;
}

/** Most distinct reactions one message may carry. */
export const MAX_DISTINCT_REACTIONS = 20;
const REACTION_NAME = /^[a-z0-9_+-]{1,32}$/;
const EMOJI = /\p{Extended_Pictographic}|\p{Regional_Indicator}|\u20e3/u;
const graphemes = new Intl.Segmenter('en', { granularity: 'grapheme' });

/** A reaction is one emoji (one grapheme: 👍, 🇫🇷, 👩🏽‍💻) or a short name (`+1`, `party_parrot`). */
export function reactionArgument(value: string): string {
  if (REACTION_NAME.test(value)) return value;
  let count = 0;
  for (const _ of graphemes.segment(value)) if (++count > 1) break;
  if (count === 1 && value.length <= 32 && EMOJI.test(value)) return value;
  throw badInput('reaction must be one emoji or a short name (a-z, 0-9, _, +, -; up to 32 characters)', 'reaction');
}
