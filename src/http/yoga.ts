import { GraphQLError, type GraphQLSchema } from 'graphql';
import { createYoga, type Plugin, type YogaInitialContext } from 'graphql-yoga';
import type { Auth } from '../auth.js';
import type { Context } from '../context.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { OperationGuard } from '../security/guard.js';
import { useOperationGuard } from '../security/yoga-plugin.js';
import { useOperationTelemetry } from '../telemetry.js';
import { renderLocalGraphiQL } from './graphiql.js';
import { MAX_REQUEST_BYTES } from './server.js';

export const GRAPHQL_PATH = '/graphql';

const GRAPHIQL_QUERY = `# Paste a token into the Headers tab first:
#   { "Authorization": "Bearer <token from npm run token -- alice Alice>" }
query Me {
  viewer { id name }
  conversations(first: 10) {
    edges { node { id kind title lastSeq unreadCount lastMessage { seq body sender { name } } } }
  }
}
`;

/**
 * Subscriptions are served by the realtime transports only (WebSocket, and
 * SSE for requests whose preferred type is `text/event-stream`), where every
 * delivery guarantee holds; a subscription that reaches Yoga (say, a client
 * that prefers JSON or multipart) is answered with how to subscribe instead.
 */
const subscriptionsElsewhere: Plugin = {
  onSubscribe({ setResultAndStopExecution }) {
    setResultAndStopExecution({
      errors: [
        new GraphQLError('Subscribe over WebSocket (graphql-transport-ws) or Server-Sent Events (Accept: text/event-stream first)', {
          extensions: { code: 'BAD_REQUEST' },
        }),
      ],
    });
  },
};

/**
 * Queries and mutations over HTTP, and GraphiQL: graphql-yoga, with the same
 * context factory, error masking and telemetry as the realtime transports.
 * Subscriptions over HTTP (Server-Sent Events) are served by the SSE
 * transport before a request reaches Yoga (src/realtime/transport/sse.ts).
 */
export function createGraphQLHttp(options: {
  schema: GraphQLSchema;
  /** The limits and checks every transport shares (src/security/guard.ts). */
  guard: OperationGuard;
  auth: Auth;
  logger: Logger;
  metrics: Metrics;
  maskError: (error: unknown) => GraphQLError;
  ensureUser: (viewer: NonNullable<Context['viewer']>) => Promise<void>;
  createContext: (viewer: Context['viewer']) => Context;
}) {
  const { logger } = options;
  return createYoga<Record<string, unknown>, Record<string, unknown>>({
    schema: options.schema,
    graphqlEndpoint: GRAPHQL_PATH,
    landingPage: false,
    logging: {
      debug: (...args) => logger.debug({ yoga: args.map(String).join(' ') }),
      info: (...args) => logger.info({ yoga: args.map(String).join(' ') }),
      warn: (...args) => logger.warn({ yoga: args.map(String).join(' ') }),
      // Yoga reports every GraphQL error here, including a user's bad input
      // (with the query text, which may hold a message body): keep it out of
      // normal logs. Unexpected errors are logged by the masking, without the query.
      error: (...args) => logger.debug({ yoga: args.map(String).join(' ') }),
    },
    plugins: [useOperationTelemetry(logger, options.metrics), useOperationGuard(options.guard, options.maskError), subscriptionsElsewhere],
    // One operation per request (docs/architecture.md, "Operation limits").
    batching: false,
    maxRequestBodySize: MAX_REQUEST_BYTES,
    // The gate parses and validates, with its own bounded cache; Yoga's would keep a second copy of every tree.
    parserAndValidationCache: false,
    maskedErrors: { maskError: (error) => options.maskError(error) },
    graphiql: { title: 'Chat API', defaultQuery: GRAPHIQL_QUERY },
    // From this server's own files (no CDN): works offline.
    renderGraphiQL: renderLocalGraphiQL,
    // Yoga types contexts as open records; ours is the closed `Context` interface.
    context: async (initial: YogaInitialContext) => {
      const viewer = await options.auth.fromAuthorizationHeader(initial.request.headers.get('authorization'));
      if (viewer) await options.ensureUser(viewer);
      return options.createContext(viewer) as never;
    },
  });
}
