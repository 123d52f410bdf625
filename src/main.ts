import { ConfigError, loadConfig } from './config.js';
import { buildApp } from './app.js';
import { createLogger } from './logger.js';

/** `npm start`: reads the environment, starts the server, drains on SIGTERM/SIGINT. */
async function main() {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`Configuration error: ${error.message}`);
      process.exit(2);
    }
    throw error;
  }
  const logger = createLogger(config.logLevel, { instance: config.instanceId });
  const app = await buildApp(config, logger);
  const { url } = await app.start();
  logger.info({ url, embeddedDatabase: !config.databaseUrl, redis: Boolean(config.redisUrl || config.redisClusterNodes.length > 0) }, 'chat API listening');
  if (process.stdout.isTTY || !config.databaseUrl) {
    console.log(`\n  GraphiQL:   ${url}\n  WebSocket:  ${url.replace(/^http/, 'ws')} (graphql-transport-ws)\n` +
      `  A token:    npm run token -- alice "Alice"   (then add the header  Authorization: Bearer <token>)\n`);
  }

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'draining');
    const timer = setTimeout(() => {
      logger.error('drain took too long; exiting');
      process.exit(1);
    }, 30_000);
    timer.unref();
    app.stop().then(
      () => {
        logger.info('stopped');
        process.exit(0);
      },
      (error) => {
        logger.error({ err: error }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
