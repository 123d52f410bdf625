import { loadDevelopmentSecret } from '../auth.js';
import type { Config } from '../config.js';
import { createDevTokenHandler, usesDevelopmentSecret } from './dev-token.js';
import { createGraphiQLAssetsHandler } from './graphiql.js';
import { firstOf, type RouteHandler } from './routes.js';
import { createWebAppHandler, WEB_DIST_DIR } from './web-app.js';

export { renderLocalGraphiQL } from './graphiql.js';
export type { RouteHandler } from './routes.js';

/**
 * Everything a browser needs besides /graphql: the web app (/ and /app/),
 * GraphiQL's files (/graphiql/<version>/) and development sign-in
 * (/dev/token, only on the development secret; 404 otherwise). Returns a
 * handler to call before Yoga: true when it answered the request.
 */
export async function createBrowserRoutes(config: Config, options: { webDistDir?: string } = {}): Promise<RouteHandler> {
  const developmentSecret = usesDevelopmentSecret(config) ? await loadDevelopmentSecret(config.dataDir) : undefined;
  return firstOf(
    createDevTokenHandler(config, developmentSecret),
    createGraphiQLAssetsHandler(),
    createWebAppHandler(options.webDistDir ?? WEB_DIST_DIR),
  );
}
