import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { parse } from 'yaml';
import { testNginxConfig, upstreamServers, writeNginxConfig } from '../ops/nginx.js';

// Docker cannot run on the build machines; these tests check what can be
// checked here: the nginx config with nginx itself, the compose file's wiring,
// and the Dockerfile's shape. (.ci/run also builds and starts the compiled server.)

const root = path.resolve(import.meta.dirname, '..');

describe.skipIf(!inject('nginx'))('the nginx configuration', () => {
  it('passes nginx -t as rendered for a local cluster and for docker-compose', async () => {
    for (const upstreams of [['127.0.0.1:4001', '127.0.0.1:4002'], ['localhost:4000']]) {
      const prefix = await mkdtemp(path.join(tmpdir(), 'chat-nginx-test-'));
      try {
        const conf = await writeNginxConfig(prefix, '127.0.0.1:18999', upstreams);
        const verdict = await testNginxConfig(prefix, conf);
        expect(verdict.output).toContain('syntax is ok');
        expect(verdict.ok).toBe(true);
      } finally {
        await rm(prefix, { recursive: true, force: true });
      }
    }
  });
});

describe('docker-compose.yml', () => {
  it('runs a Citus coordinator with two workers, Redis, three instances and nginx, wired together', async () => {
    const compose = parse(await readFile(path.join(root, 'docker-compose.yml'), 'utf8'), { merge: true });
    const services = compose.services as Record<string, any>;
    expect(Object.keys(services).sort()).toEqual(['chat1', 'chat2', 'chat3', 'citus-setup', 'coordinator', 'nginx', 'redis', 'worker1', 'worker2']);
    for (const node of ['coordinator', 'worker1', 'worker2']) expect(services[node].image).toMatch(/^citusdata\/citus:/);
    const setup = services['citus-setup'];
    expect(setup.command.join(' ')).toMatch(/citus_add_node\('worker1'[\s\S]*citus_add_node\('worker2'/);
    for (const name of ['chat1', 'chat2', 'chat3']) {
      const chat = services[name];
      expect(chat.build).toBe('.');
      expect(chat.environment.DATABASE_URL).toMatch(/@coordinator:5432\//);
      expect(chat.environment.REDIS_URL).toBe('redis://redis:6379');
      expect(chat.environment.JWT_SECRET).toBeDefined();
      expect(chat.depends_on['citus-setup'].condition).toBe('service_completed_successfully');
    }
    const nginx = services.nginx;
    expect(nginx.volumes[0]).toMatch(/^\.\/deploy\/nginx\/chat\.conf\.template:\/etc\/nginx\/templates\//);
    expect(nginx.environment.UPSTREAM_SERVERS).toBe(upstreamServers(['chat1:4000', 'chat2:4000', 'chat3:4000']));
    const template = await readFile(path.join(root, 'deploy/nginx/chat.conf.template'), 'utf8');
    expect(template).toContain('${LISTEN}');
    expect(template).toContain('${UPSTREAM_SERVERS}');
  });
});

describe('Dockerfile', () => {
  it('is multi-stage, runs as a non-root user, and starts the compiled server directly', async () => {
    const dockerfile = await readFile(path.join(root, 'Dockerfile'), 'utf8');
    const stages = dockerfile.split('\n').filter((line) => /^FROM\s/.test(line));
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const final = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
    expect(final).toMatch(/^USER node$/m);
    expect(final).toMatch(/^CMD \["node", "dist\/main\.js"\]$/m);
    const build = JSON.parse(await readFile(path.join(root, 'tsconfig.build.json'), 'utf8'));
    // dist/main.js exists because src/ compiles into dist/ one to one.
    expect(build.compilerOptions).toMatchObject({ rootDir: 'src', outDir: 'dist' });
  });
});
