import type { StreamStart } from '../chat/streams.js';
import { forbidden } from '../errors.js';
import type { BusEvent } from './bus.js';
import type { ConversationFeed } from './feed.js';
import type { Presence } from './presence.js';
import type { PresenceWatch } from './presence-watch.js';
import type { TypingListener } from './router.js';
import { RoutedStream } from './streams.js';

/**
 * `presence(conversationId)`: the current state of each watched user, then
 * every change. Bus events are only hints (two instances may announce in
 * either order); the stream re-reads presence and emits only real changes.
 */
export class PresenceStream extends RoutedStream {
  private readonly state = new Map<string, boolean>();
  private stopWatching: (() => void) | undefined;
  private checks: Promise<void> = Promise.resolve();
  private presence!: Presence;

  async start(presence: Presence, watch: PresenceWatch, userIds: readonly string[]): Promise<this> {
    this.presence = presence;
    // Watch first, then read: a change in between is heard and re-checked.
    this.stopWatching = await watch.watch(userIds, (userId) => this.recheck(userId));
    if (this.closed) {
      this.teardown();
      return this;
    }
    const online = new Set(await presence.onlineAmong(userIds));
    for (const userId of userIds) {
      this.state.set(userId, online.has(userId));
      await this.output.send({ kind: 'PresenceEvent', userId, online: online.has(userId) }, undefined);
    }
    return this;
  }

  private recheck(userId: string): void {
    this.checks = this.checks
      .then(async () => {
        if (this.closed || !this.state.has(userId)) return;
        const online = (await this.presence.onlineAmong([userId])).length > 0;
        if (this.state.get(userId) === online) return;
        this.state.set(userId, online);
        await this.output.send({ kind: 'PresenceEvent', userId, online }, undefined);
      })
      .catch((error) => this.deps.onError(error, 'presence'));
  }

  onJoined(): void {}
  onLeft(): void {}
  onResync(): void {
    for (const userId of this.state.keys()) this.recheck(userId);
  }

  protected teardown(): void {
    this.stopWatching?.();
    this.stopWatching = undefined;
  }
}

/** `typing(conversationId)`: who is typing in one conversation, except the viewer. */
export class TypingStream extends RoutedStream implements TypingListener {
  private feed: ConversationFeed | undefined;
  private conversationId = '';
  private stopWatching: (() => void) | undefined;

  /** `authorize` runs once the user's channel is live (see ConversationStream.start). */
  async start(conversationId: string, authorize: () => Promise<StreamStart>): Promise<this> {
    this.conversationId = conversationId;
    try {
      // The user channel (small conversations) and, via the feed, the
      // conversation channel (large ones) are where typing events travel.
      await this.deps.router.attachUser(this.userId, this);
      const start = await authorize();
      [this.feed] = await this.deps.router.acquire([{ id: start.conversationId, memberCount: start.memberCount }]);
    } catch (error) {
      this.finish();
      throw error;
    }
    if (this.closed) this.teardown();
    else this.stopWatching = this.deps.router.watchTyping(conversationId, this);
    return this;
  }

  onTyping(event: Extract<BusEvent, { type: 'typing' }>): void {
    if (this.closed || event.user.id === this.userId) return;
    const sent = this.output.send(
      { kind: 'TypingEvent', conversationId: event.conversationId, user: event.user, typing: event.typing, expiresAt: new Date(event.expiresAt) },
      undefined,
    );
    if (sent) sent.catch((error) => this.deps.onError(error, 'typing'));
  }

  onJoined(): void {}
  onLeft(event: Extract<BusEvent, { type: 'left' }>): void {
    if (event.conversationId === this.conversationId) this.finish(forbidden('You are no longer a member of this conversation'));
  }
  onResync(): void {}

  protected teardown(): void {
    this.stopWatching?.();
    this.stopWatching = undefined;
    if (this.feed) {
      this.deps.router.release(this.feed);
      this.feed = undefined;
    }
    this.deps.router.detachUser(this.userId, this);
  }
}
