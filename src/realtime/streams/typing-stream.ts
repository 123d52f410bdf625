import type { StreamStart } from '../../chat/streams.js';
import type { MessageRecord, UserRecord } from '../../chat/records.js';
import type { Context } from '../../context.js';
import type { BusEvent } from '../broker/broker.js';
import type { ConversationFeed } from '../feed.js';
import type { TypingListener } from '../hub.js';
import { ConversationScopedStream } from './live-stream.js';

/** Root value of the typing subscription. */
export interface TypingEvent {
  kind: 'TypingEvent';
  conversationId: string;
  user: UserRecord;
  typing: boolean;
  expiresAt: Date;
}

/** `typing(conversationId)`: who is typing in one conversation, except the viewer. Ephemeral: a lost event is not repaired. */
export class TypingStream extends ConversationScopedStream implements TypingListener {
  private feed: ConversationFeed<MessageRecord> | undefined;
  private stopWatching: (() => void) | undefined;

  constructor(context: Context) {
    super(context, 'typing');
  }

  /** `authorize` runs once the user's channel is live (see MessageStream.start). */
  start(conversationId: string, authorize: () => Promise<StreamStart>): Promise<this> {
    return this.deps.hub.starting(() => this.begin(conversationId, authorize));
  }

  private async begin(conversationId: string, authorize: () => Promise<StreamStart>): Promise<this> {
    this.conversationId = conversationId;
    try {
      // Typing travels where the conversation's messages do: the user
      // channel (small conversations) or, held through the feed, the
      // conversation channel (large ones).
      await this.deps.hub.attachUser(this.viewer.id, this);
      const start = await authorize();
      [this.feed] = await this.deps.hub.acquire('messages', [{ id: start.conversationId, memberCount: start.memberCount }]);
    } catch (error) {
      void this.return();
      throw error;
    }
    if (this.closed) this.teardown();
    this.throwIfEnded();
    return this;
  }

  protected activate(): void {
    this.stopWatching = this.deps.hub.watchTyping(this.conversationId, this);
  }

  onTyping(event: Extract<BusEvent, { type: 'typing' }>): void {
    if (this.closed || event.user.id === this.viewer.id) return;
    this.emit({
      kind: 'TypingEvent',
      conversationId: event.conversationId,
      user: event.user,
      typing: event.typing,
      expiresAt: new Date(event.expiresAt),
    } satisfies TypingEvent);
  }

  protected teardown(): void {
    this.stopWatching?.();
    this.stopWatching = undefined;
    if (this.feed) {
      this.deps.hub.release('messages', this.feed);
      this.feed = undefined;
    }
    this.deps.hub.detachUser(this.viewer.id, this);
  }
}
