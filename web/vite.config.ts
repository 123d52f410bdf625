import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// The server serves the built app at /app/ (src/http/web-app.ts).
// `npm run dev -w web` runs Vite's dev server with hot reload instead, in
// front of `npm start` on port 4000 (or CHAT_SERVER).
const server = process.env.CHAT_SERVER ?? 'http://localhost:4000';

export default defineConfig({
  base: '/app/',
  plugins: [react()],
  resolve: {
    // The SDK from its sources: no separate `build:client` before building
    // the app, and the same code the SDK's tests run. A team outside this
    // repository installs @chat-api/client and drops this alias.
    alias: { '@chat-api/client': fileURLToPath(new URL('../client/src/index.ts', import.meta.url)) },
  },
  build: {
    target: 'es2022',
    sourcemap: true,
  },
  server: {
    proxy: {
      '/graphql': { target: server, ws: true },
      '/dev/token': server,
    },
  },
});
