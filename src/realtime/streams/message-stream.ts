import type { MessageRecord } from '../../chat/records.js';
import type { StreamStart } from '../../chat/streams.js';
import type { Context } from '../../context.js';
import type { ConversationFeed, FeedMember } from '../feed.js';
import { ConversationScopedStream } from './live-stream.js';

/** `messageAdded(conversationId, afterSeq)`: one conversation's messages, resumable from a cursor. */
export class MessageStream extends ConversationScopedStream {
  private feed: ConversationFeed<MessageRecord> | undefined;
  private member: FeedMember<MessageRecord> | undefined;

  constructor(context: Context) {
    super(context, 'messageAdded');
  }

  /**
   * `authorize` runs after the user's channel is live: a removal committed
   * after the authorization then arrives as a `left` event (or moves the
   * inbox version), which ends the stream, instead of falling between the
   * check and the subscription.
   */
  start(conversationId: string, authorize: () => Promise<StreamStart & { cursor: number }>): Promise<this> {
    return this.deps.hub.starting(() => this.begin(conversationId, authorize));
  }

  private async begin(conversationId: string, authorize: () => Promise<StreamStart & { cursor: number }>): Promise<this> {
    this.conversationId = conversationId;
    try {
      await this.deps.hub.attachUser(this.viewer.id, this);
      const start = await authorize();
      const [feed] = await this.deps.hub.acquire('messages', [{ id: start.conversationId, memberCount: start.memberCount }]);
      this.feed = feed!;
      // The feed's copy of the id: one string per conversation, not one per subscription.
      this.conversationId = feed!.conversationId;
      this.member = { cursor: start.cursor, sink: this };
    } catch (error) {
      void this.return();
      throw error;
    }
    if (this.closed) this.teardown();
    this.throwIfEnded();
    return this;
  }

  protected activate(): void {
    if (this.feed && this.member) this.follow(this.feed, this.member);
  }

  protected teardown(): void {
    if (this.member && this.feed) this.feed.leave(this.member);
    if (this.feed) {
      this.deps.hub.release('messages', this.feed);
      this.feed = undefined;
    }
    this.deps.hub.detachUser(this.viewer.id, this);
  }
}
