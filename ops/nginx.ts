import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const NGINX_TEMPLATE = fileURLToPath(new URL('../deploy/nginx/chat.conf.template', import.meta.url));

/**
 * The template's ${UPSTREAM_SERVERS}: every instance twice. As a primary, an
 * instance that fails once (refuses a connection while it restarts, or times
 * out while frozen) is left out for 10 s, so retries land elsewhere. As a
 * backup that is never left out, it is tried when every primary is: in a
 * rolling restart the last instance goes down while the ones restarted before
 * it are still in their 10 s, and without the backups nginx answered 502
 * ("no live upstreams") to everyone although they were up again.
 */
export function upstreamServers(addresses: readonly string[]): string {
  return [
    ...addresses.map((address) => `server ${address} max_fails=1 fail_timeout=10s;`),
    ...addresses.map((address) => `server ${address} max_fails=0 backup;`),
  ].join(' ');
}

/** Fills the template's ${LISTEN} and ${UPSTREAM_SERVERS}; nginx's own $variables are left alone. */
export async function renderChatConf(listen: string, upstreams: readonly string[]): Promise<string> {
  const template = await readFile(NGINX_TEMPLATE, 'utf8');
  return template.replaceAll('${LISTEN}', listen).replaceAll('${UPSTREAM_SERVERS}', upstreamServers(upstreams));
}

export function findNginx(): string {
  for (const candidate of [process.env.NGINX_BIN, '/usr/sbin/nginx', '/usr/bin/nginx', '/usr/local/sbin/nginx']) {
    if (candidate && existsSync(candidate)) return candidate;
  }
  throw new Error('nginx is not installed (Debian: apt-get install nginx); or set NGINX_BIN');
}

export interface RunningNginx {
  process: ChildProcess;
  stop(): Promise<void>;
}

/**
 * Writes a complete nginx.conf under `prefix` (config, pid, logs and temp
 * files all inside it) so that nginx needs no system configuration and
 * several can run side by side. Returns the config's path.
 */
export async function writeNginxConfig(prefix: string, listen: string, upstreams: readonly string[]): Promise<string> {
  for (const dir of ['logs', 'temp']) await mkdir(path.join(prefix, dir), { recursive: true });
  // Workers drop root privileges; they must be able to use the temp directory.
  await chmod(prefix, 0o755);
  await chmod(path.join(prefix, 'temp'), 0o777);
  await writeFile(path.join(prefix, 'chat.conf'), await renderChatConf(listen, upstreams));
  await writeFile(
    path.join(prefix, 'nginx.conf'),
    `worker_processes 1;
daemon off;
pid ${prefix}/nginx.pid;
error_log ${prefix}/logs/error.log warn;
events { worker_connections 16384; }
http {
    access_log off;
    client_body_temp_path ${prefix}/temp/body;
    proxy_temp_path ${prefix}/temp/proxy;
    fastcgi_temp_path ${prefix}/temp/fastcgi;
    uwsgi_temp_path ${prefix}/temp/uwsgi;
    scgi_temp_path ${prefix}/temp/scgi;
    include ${prefix}/chat.conf;
}
`,
  );
  return path.join(prefix, 'nginx.conf');
}

/** Checks a config with `nginx -t`; resolves with nginx's verdict. */
export async function testNginxConfig(prefix: string, conf: string): Promise<{ ok: boolean; output: string }> {
  const child = spawn(findNginx(), ['-t', '-p', prefix, '-c', conf, '-e', path.join(prefix, 'logs', 'error.log')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { ok: code === 0, output };
}

/** Runs nginx in the foreground on a config from `writeNginxConfig`. */
export async function startNginx(prefix: string, listen: string, upstreams: readonly string[]): Promise<RunningNginx> {
  const bin = findNginx();
  await writeNginxConfig(prefix, listen, upstreams);
  const child = spawn(bin, ['-p', prefix, '-c', path.join(prefix, 'nginx.conf'), '-e', path.join(prefix, 'logs', 'error.log')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // nginx has no "ready" message: wait for its port to accept connections.
  const [host, port] = listen.includes(':') ? [listen.split(':')[0]!, Number(listen.split(':')[1])] : ['127.0.0.1', Number(listen)];
  const net = await import('node:net');
  for (let waited = 0; ; waited += 50) {
    if (child.exitCode !== null) throw new Error(`nginx exited: ${stderr}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, host, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (open) break;
    if (waited > 10_000) throw new Error(`nginx did not start: ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    process: child,
    async stop() {
      if (child.exitCode === null) child.kill('SIGQUIT');
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}
