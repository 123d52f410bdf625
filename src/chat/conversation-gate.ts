/**
 * At most `limit` sends of one conversation in flight per instance; the rest
 * wait here, in memory, instead of each holding a database connection while
 * it waits for the conversation's row lock (every send takes it:
 * chat_send_message increments last_seq). Sends into one conversation run one
 * at a time in the database anyway, so more in flight adds no throughput, and
 * a hot conversation would otherwise fill the instance's pool and stall
 * everyone else's requests. docs/citus.md, "A hot conversation", has the
 * numbers behind the limit.
 */
export type ConversationGate = <T>(conversationId: string, work: () => Promise<T>) => Promise<T>;

/** Sends of one conversation in flight per instance: one waiting on the lock while one commits. */
export const SENDS_IN_FLIGHT_PER_CONVERSATION = 2;

export function createConversationGate(limit = SENDS_IN_FLIGHT_PER_CONVERSATION): ConversationGate {
  const gates = new Map<string, { active: number; waiting: (() => void)[] }>();
  return async (conversationId, work) => {
    let gate = gates.get(conversationId);
    if (!gate) gates.set(conversationId, (gate = { active: 0, waiting: [] }));
    if (gate.active >= limit) await new Promise<void>((resolve) => gate!.waiting.push(resolve));
    else gate.active++;
    try {
      return await work();
    } finally {
      // Hand the slot to the next waiter, in arrival order, or give it back.
      const next = gate.waiting.shift();
      if (next) next();
      else if (--gate.active === 0 && gates.get(conversationId) === gate) gates.delete(conversationId);
    }
  };
}
