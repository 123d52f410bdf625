import { resolveSecret, signToken, isValidUserId } from '../auth.js';
import { ConfigError, loadConfig } from '../config.js';

/**
 * `npm run token -- <userId> [name] [--expires 30d]`: prints a bearer token
 * signed with JWT_SECRET, or with the embedded default's development secret
 * (the one the server uses when JWT_SECRET is unset).
 */
async function main() {
  const args = process.argv.slice(2);
  let expiresIn = '30d';
  const expiresAt = args.indexOf('--expires');
  if (expiresAt !== -1) {
    expiresIn = args[expiresAt + 1] ?? expiresIn;
    args.splice(expiresAt, 2);
  }
  const [userId, ...nameParts] = args;
  if (!userId || !isValidUserId(userId)) {
    console.error('usage: npm run token -- <userId> [display name] [--expires 30d]\n  userId: 1-128 of A-Z a-z 0-9 _ . @ : | + -');
    process.exit(2);
  }
  const config = loadConfig();
  const secret = await resolveSecret(config);
  if (!secret) {
    throw new ConfigError('JWT_JWKS_URL is set: tokens come from your identity provider, not from this script');
  }
  const token = await signToken(secret, userId, {
    name: nameParts.join(' ') || undefined,
    expiresIn,
    issuer: config.jwtIssuer,
    audience: config.jwtAudience,
  });
  console.log(token);
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
