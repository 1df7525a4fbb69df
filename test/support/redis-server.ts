/**
 * Redis servers for the test suites.
 *
 * - Standalone: `TXKIT_REDIS_URL` when set, otherwise a private throwaway `redis-server`
 *   (temp dir, free 127.0.0.1 port, `--save "" --appendonly no`) when the binary exists.
 * - Cluster: `TXKIT_REDIS_CLUSTER_NODES` when set (comma-separated `host:port` seeds),
 *   otherwise, when a private standalone server was started, a private 3-master cluster
 *   (`--cluster-enabled yes`, made with `redis-cli --cluster create … --cluster-replicas 0`).
 *
 * Environment handed to the test workers:
 * - `TXKIT_REDIS_URL`: `redis://127.0.0.1:<port>`
 * - `TXKIT_REDIS_CLUSTER_NODES`: `127.0.0.1:<p1>,127.0.0.1:<p2>,127.0.0.1:<p3>` (when available)
 * - `TXKIT_REDIS_PRIVATE=1` when the standalone server is private (fault tests may restart it),
 *   with `TXKIT_REDIS_PORT` and `TXKIT_REDIS_DIR`.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface StartedServer {
  env: Record<string, string>;
  stop(): Promise<void>;
}

const SERVER_BIN = process.env.TXKIT_REDIS_SERVER_BIN ?? '/usr/bin/redis-server';
const CLI_BIN = process.env.TXKIT_REDIS_CLI_BIN ?? '/usr/bin/redis-cli';

async function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** A free loopback port whose cluster-bus twin (port + 10000) is free as well. */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 20_000 + Math.floor(Math.random() * 30_000);
    if ((await portIsFree(port)) && (await portIsFree(port + 10_000))) return port;
  }
  throw new Error('no free loopback port pair found for redis-server');
}

/** Sends one inline command over RESP and returns the raw reply text (enough for PING/INFO checks). */
async function rawCommand(port: number, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let data = '';
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(`${command}\r\n`));
    sock.on('data', (chunk) => {
      data += chunk;
      if (data.endsWith('\r\n') && (!data.startsWith('$') || data.split('\r\n').length > 2)) {
        sock.end();
        resolve(data);
      }
    });
    sock.on('error', reject);
  });
}

/** Resolves once the server answers PING; rejects if the process exits first. */
async function waitForPing(port: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`redis-server on ${port} exited with ${child.exitCode}`);
    try {
      if ((await rawCommand(port, 'PING')).startsWith('+PONG')) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`redis-server on ${port} did not answer PING in 15 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface RedisProcess {
  port: number;
  dir: string;
  child: ChildProcess;
}

/** Starts one private `redis-server` in `dir` on `port`; `extra` adds config arguments. */
export async function startRedisProcess(
  dir: string,
  port: number,
  extra: string[] = [],
): Promise<RedisProcess> {
  await mkdir(dir, { recursive: true });
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
    '--dir',
    dir,
    '--daemonize',
    'no',
    '--logfile',
    path.join(dir, 'redis.log'),
    ...extra,
  ];
  const child = spawn(SERVER_BIN, args, { stdio: 'ignore' });
  child.unref();
  await waitForPing(port, child);
  return { port, dir, child };
}

export async function stopProcess(proc: RedisProcess): Promise<void> {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => proc.child.once('exit', () => resolve()));
  proc.child.kill('SIGTERM');
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

async function startCluster(root: string): Promise<{ nodes: RedisProcess[]; seeds: string }> {
  const nodes: RedisProcess[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      nodes.push(
        await startRedisProcess(path.join(root, `cluster-${i}`), port, [
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          'nodes.conf',
          '--cluster-node-timeout',
          '5000',
        ]),
      );
    }
    const addresses = nodes.map((n) => `127.0.0.1:${n.port}`);
    await run(CLI_BIN, ['--cluster', 'create', ...addresses, '--cluster-replicas', '0', '--cluster-yes']);
    // Every node must agree the cluster is up before tests route by slot.
    const deadline = Date.now() + 20_000;
    for (const node of nodes) {
      while (!(await rawCommand(node.port, 'CLUSTER INFO')).includes('cluster_state:ok')) {
        if (Date.now() > deadline) throw new Error('private Redis cluster did not reach cluster_state:ok');
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    return { nodes, seeds: addresses.join(',') };
  } catch (err) {
    await Promise.all(nodes.map(stopProcess));
    throw err;
  }
}

export async function startServer(): Promise<StartedServer | undefined> {
  const env: Record<string, string> = {};
  const owned: RedisProcess[] = [];
  let root: string | undefined;
  const haveBinaries = existsSync(SERVER_BIN) && existsSync(CLI_BIN);

  if (process.env.TXKIT_REDIS_URL) {
    env.TXKIT_REDIS_URL = process.env.TXKIT_REDIS_URL;
  } else if (haveBinaries) {
    root = await mkdtemp(path.join(os.tmpdir(), 'txkit-redis-'));
    const port = await freePort();
    const dir = path.join(root, 'standalone');
    owned.push(await startRedisProcess(dir, port));
    Object.assign(env, {
      TXKIT_REDIS_URL: `redis://127.0.0.1:${port}`,
      TXKIT_REDIS_PRIVATE: '1',
      TXKIT_REDIS_PORT: String(port),
      TXKIT_REDIS_DIR: dir,
    });
  } else {
    return undefined;
  }

  if (process.env.TXKIT_REDIS_CLUSTER_NODES) {
    env.TXKIT_REDIS_CLUSTER_NODES = process.env.TXKIT_REDIS_CLUSTER_NODES;
  } else if (haveBinaries) {
    root ??= await mkdtemp(path.join(os.tmpdir(), 'txkit-redis-'));
    const cluster = await startCluster(root);
    owned.push(...cluster.nodes);
    env.TXKIT_REDIS_CLUSTER_NODES = cluster.seeds;
  }

  return {
    env,
    async stop() {
      await Promise.all(owned.map(stopProcess));
      if (root) await rm(root, { recursive: true, force: true });
    },
  };
}
