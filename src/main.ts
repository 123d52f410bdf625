import { existsSync } from 'node:fs';
import path from 'node:path';
import { ConfigError, loadConfig } from './config.js';
import { buildApp } from './app.js';
import { createLogger } from './logger.js';
import { WEB_APP_PATH, WEB_DIST_DIR } from './http/web-app.js';

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
  let url: string;
  try {
    ({ url } = await app.start());
  } catch (error) {
    // A port someone else holds is a set-up mistake, not a crash: say which
    // port and how to pick another, and stop what buildApp started (the
    // embedded PostgreSQL above all, which would otherwise keep running).
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EADDRINUSE' && code !== 'EACCES') throw error;
    await app.stop().catch((stopError) => logger.error({ err: stopError }, 'stop failed'));
    console.error(
      code === 'EADDRINUSE'
        ? `Port ${config.port} on ${config.host} is already in use. Stop what is using it, or start on another port: PORT=${config.port + 1} npm start`
        : `Not allowed to listen on port ${config.port} on ${config.host}. Start on a port above 1023: PORT=4000 npm start`,
    );
    process.exit(2);
  }
  logger.info({ url, embeddedDatabase: !config.databaseUrl, redis: Boolean(config.redisUrl || config.redisClusterNodes.length > 0) }, 'chat API listening');
  if (process.stdout.isTTY || !config.databaseUrl) {
    const webApp = existsSync(path.join(WEB_DIST_DIR, 'index.html')) ? `  Web app:    ${new URL(WEB_APP_PATH, url).href}\n` : '';
    console.log(`\n${webApp}  GraphiQL:   ${url}\n  WebSocket:  ${url.replace(/^http/, 'ws')} (graphql-transport-ws)\n` +
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
