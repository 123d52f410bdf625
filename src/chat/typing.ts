import type { Viewer } from '../auth.js';
import type { Database } from '../db/client.js';
import { requireMember } from './access.js';
import type { ChatEvents } from './events.js';
import { createRateLimiter } from './rate-limit.js';
import { conversationIdArgument } from './validate.js';

/** How long a typing indicator lasts unless renewed; clients hide it after `expiresAt`. */
export const TYPING_TTL_MS = 6_000;
/** Renewals closer together than this are absorbed: clients call setTyping on every keystroke. */
const TYPING_COALESCE_MS = 2_000;

export type TypingService = ReturnType<typeof createTypingService>;

/** Typing indicators: ephemeral, never stored, coalesced and rate-limited, expiring by themselves. */
export function createTypingService(db: Database, events: ChatEvents, memberIds: (id: string) => Promise<string[]>, shared?: { take(key: string): void | Promise<void> }) {
  // Shared by every instance when the app passes one (src/security/abuse.ts); per process otherwise.
  const limit = shared ?? createRateLimiter('typing updates', 2, 20);
  const lastSent = new Map<string, number>();

  return {
    async setTyping(viewer: Viewer, id: string, typing: boolean): Promise<boolean> {
      const conversationId = conversationIdArgument(id);
      await limit.take(viewer.id);
      const view = await requireMember(db, conversationId, viewer.id);
      const key = `${viewer.id}\n${conversationId}`;
      const now = Date.now();
      if (typing && now - (lastSent.get(key) ?? 0) < TYPING_COALESCE_MS) return true;
      if (typing) lastSent.set(key, now);
      else lastSent.delete(key);
      if (lastSent.size > 100_000) lastSent.clear();
      const small = view.memberCount <= events.memberListMax;
      events.typing(conversationId, { id: viewer.id, name: viewer.name }, typing, new Date(now + TYPING_TTL_MS), {
        memberCount: view.memberCount,
        memberIds: small ? await memberIds(conversationId) : null,
      });
      return true;
    },
  };
}
