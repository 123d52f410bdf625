/**
 * Two users chatting through the SDK alone.
 *
 *   npm start                                   # the server, in another terminal
 *   npx tsc -p client/tsconfig.build.json       # build the SDK once
 *   export ALICE_TOKEN=$(npm run -s token -- alice Alice) BOB_TOKEN=$(npm run -s token -- bob Bob)
 *   npx tsx client/examples/two-users.ts
 *
 * CHAT_URL overrides the endpoint (default http://localhost:4000/graphql).
 */
import WebSocket from 'ws';
import { createChatClient, type ChatClient } from '@chat-api/client';

const url = process.env.CHAT_URL ?? 'http://localhost:4000/graphql';
const [aliceToken, bobToken] = [process.env.ALICE_TOKEN, process.env.BOB_TOKEN];
if (!aliceToken || !bobToken) {
  console.error('Set ALICE_TOKEN and BOB_TOKEN (npm run -s token -- alice Alice, npm run -s token -- bob Bob).');
  process.exit(1);
}

// Node 20 has no global WebSocket: hand the SDK the `ws` package's.
const connect = (token: string): ChatClient => createChatClient({ url, token, webSocketImpl: WebSocket });
const alice = connect(aliceToken);
const bob = connect(bobToken);

try {
  const [me, them] = await Promise.all([alice.viewer(), bob.viewer()]);
  await Promise.all([alice.ready(), bob.ready()]);

  // Bob answers every question he is asked. `send` retries by itself until
  // the server has the message; it rejects only for good (or on close).
  const replies: Promise<unknown>[] = [];
  bob.onMessage((message) => {
    console.log(`bob   sees  #${message.seq} ${message.sender.name}: ${message.body}`);
    if (message.sender.id !== them.id && message.body.endsWith('?')) {
      replies.push(bob.send(message.conversationId, `Fine, thanks ${me.name}!`).catch((error) => console.error('reply failed:', error.code)));
    }
  });

  const dm = await alice.startDirectConversation(them.id);
  const sent = await alice.send(dm.id, `Hi ${them.name}, how are you?`);
  console.log(`alice sent  #${sent.seq} ${sent.body}`);

  // Alice waits for the answer on her own stream of messages.
  for await (const message of alice.incoming({ conversationId: dm.id })) {
    if (message.sender.id === them.id) {
      console.log(`alice got   #${message.seq} ${message.sender.name}: ${message.body}`);
      break;
    }
  }
  await Promise.all(replies);
} finally {
  await Promise.all([alice.close(), bob.close()]);
}
