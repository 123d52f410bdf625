import { defineConfig } from 'prisma/config';

// The CLI is only used offline here (`prisma generate`); the server applies
// migrations itself (src/db/migrate.ts) and connects through @prisma/adapter-pg.
export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
  datasource: { url: process.env.DATABASE_URL ?? 'postgresql://localhost/unused' },
});
