import type { Context } from '../../context.js';
import { LiveStream } from './live-stream.js';

/** Root value of the presence subscription. */
export interface PresenceChangedEvent {
  kind: 'PresenceEvent';
  userId: string;
  online: boolean;
}

/**
 * `presence(conversationId)`: the current state of each watched user, then
 * every change. Broker events are only hints (two instances may announce in
 * either order, and any may be lost): the stream re-reads presence and emits
 * only real changes. Watching a conversation's members ends with FORBIDDEN
 * when the viewer leaves it or is removed.
 */
export class PresenceStream extends LiveStream {
  private readonly state = new Map<string, boolean>();
  private stopWatching: (() => void) | undefined;
  private checks: Promise<void> = Promise.resolve();
  /** Set when watching one conversation's members: access to it is what the stream depends on. */
  private conversationId: string | null = null;
  private readonly recheckAll = () => {
    for (const userId of this.state.keys()) this.recheck(userId);
  };

  constructor(context: Context) {
    super(context, 'presence');
  }

  start(conversationId: string | null, loadTargets: () => Promise<string[]>): Promise<this> {
    return this.deps.hub.starting(() => this.begin(conversationId, loadTargets));
  }

  private async begin(conversationId: string | null, loadTargets: () => Promise<string[]>): Promise<this> {
    this.conversationId = conversationId;
    try {
      // Membership first (see MessageStream.start), then who to watch, then
      // watch before reading: a change in between is heard and re-checked.
      if (conversationId) await this.deps.hub.attachUser(this.viewer.id, this);
      const userIds = await loadTargets();
      this.stopWatching = await this.deps.presenceWatch.watch(userIds, (userId) => this.recheck(userId), this.recheckAll);
      const online = new Set(await this.deps.presence.onlineAmong(userIds));
      for (const userId of userIds) {
        this.state.set(userId, online.has(userId));
        this.emit({ kind: 'PresenceEvent', userId, online: online.has(userId) } satisfies PresenceChangedEvent);
      }
    } catch (error) {
      void this.return();
      throw error;
    }
    if (this.closed) {
      this.teardown();
      if (this.endedWith) throw this.endedWith;
    }
    return this;
  }

  protected activate(): void {}

  private recheck(userId: string): void {
    this.checks = this.checks
      .then(async () => {
        if (this.closed || !this.state.has(userId)) return;
        const online = (await this.deps.presence.onlineAmong([userId])).length > 0;
        if (this.state.get(userId) === online) return;
        this.state.set(userId, online);
        await this.emit({ kind: 'PresenceEvent', userId, online } satisfies PresenceChangedEvent);
      })
      .catch((error) => this.deps.onError(error, 'presence'));
  }

  override onLeft(event: { conversationId: string }): void {
    if (this.conversationId !== null && event.conversationId === this.conversationId) this.endForbidden();
  }

  override onResync(): void {
    const conversationId = this.conversationId;
    if (this.closed || conversationId === null) return;
    this.deps
      .isMember(conversationId, this.viewer.id)
      .then((member) => {
        if (!member) this.endForbidden();
      })
      .catch((error) => this.deps.onError(error, 'membership recheck'));
  }

  protected teardown(): void {
    this.stopWatching?.();
    this.stopWatching = undefined;
    if (this.conversationId !== null) this.deps.hub.detachUser(this.viewer.id, this);
  }
}
