/**
 * A PostgreSQL server for the test suites: `TXKIT_PG_URL` when set, otherwise a private
 * throwaway cluster (temp dir, free loopback port, unix socket in the temp dir) with
 * prepared transactions enabled, when the server binaries are installed.
 *
 * The server refuses to run as root, so as root the cluster is owned by and run as the
 * `postgres` OS user (`runuser -u postgres --`).
 *
 * Environment handed to the test workers:
 * - `TXKIT_PG_URL`: `postgres://postgres@127.0.0.1:<port>/test`
 * - `TXKIT_PG_PRIVATE=1`, `TXKIT_PG_DATA_DIR`, `TXKIT_PG_BIN_DIR`, `TXKIT_PG_RUN_AS`,
 *   `TXKIT_PG_PORT`, `TXKIT_PG_SOCKET_DIR`: what {@link restartPrivateServer} needs.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const run = promisify(execFile);

export interface StartedServer {
  env: Record<string, string>;
  stop(): Promise<void>;
}

/** Finds the directory holding `initdb`, `pg_ctl` and `pgbench`, newest version first. */
export function findPgBinDir(): string | undefined {
  if (process.env.TXKIT_PG_BIN_DIR && existsSync(path.join(process.env.TXKIT_PG_BIN_DIR, 'pg_ctl'))) {
    return process.env.TXKIT_PG_BIN_DIR;
  }
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => /^\d+$/.test(v))
    .sort((a, b) => Number(b) - Number(a));
  for (const v of versions) {
    const dir = path.join(root, v, 'bin');
    if (existsSync(path.join(dir, 'initdb')) && existsSync(path.join(dir, 'pg_ctl'))) return dir;
  }
  return undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

interface Cluster {
  binDir: string;
  dataDir: string;
  socketDir: string;
  port: number;
  runAs: string;
  /** Server settings that override the defaults below (`-c name=value`). */
  settings?: Record<string, string>;
}

async function asOwner(cluster: Pick<Cluster, 'runAs'>, file: string, args: string[]): Promise<void> {
  if (cluster.runAs) await run('runuser', ['-u', cluster.runAs, '--', file, ...args]);
  else await run(file, args);
}

async function pgCtl(cluster: Cluster, args: string[]): Promise<void> {
  await asOwner(cluster, path.join(cluster.binDir, 'pg_ctl'), ['-D', cluster.dataDir, ...args]);
}

function serverOptions(cluster: Cluster): string {
  const overrides = Object.entries(cluster.settings ?? {}).map(([k, v]) => `-c ${k}=${v}`);
  return [
    `-p ${cluster.port}`,
    `-k ${cluster.socketDir}`,
    "-c listen_addresses='127.0.0.1'",
    '-c max_prepared_transactions=10',
    '-c max_connections=120',
    // Throwaway data: no fsync, so tests are fast; a crash of the *server* process
    // (pg_ctl -m immediate) still recovers everything from the WAL in the page cache.
    '-c fsync=off',
    '-c full_page_writes=off',
    ...overrides,
  ].join(' ');
}

async function startCluster(cluster: Cluster): Promise<void> {
  await pgCtl(cluster, [
    '-l',
    path.join(cluster.socketDir, '..', 'server.log'),
    '-w',
    '-t',
    '60',
    '-o',
    serverOptions(cluster),
    'start',
  ]);
}

function clusterFromEnv(e: Record<string, string | undefined>): Cluster | undefined {
  if (e.TXKIT_PG_PRIVATE !== '1' || !e.TXKIT_PG_DATA_DIR || !e.TXKIT_PG_BIN_DIR || !e.TXKIT_PG_SOCKET_DIR) {
    return undefined;
  }
  return {
    binDir: e.TXKIT_PG_BIN_DIR,
    dataDir: e.TXKIT_PG_DATA_DIR,
    socketDir: e.TXKIT_PG_SOCKET_DIR,
    port: Number(e.TXKIT_PG_PORT),
    runAs: e.TXKIT_PG_RUN_AS ?? '',
  };
}

/** True when the tests run against the private cluster, which they may stop and restart. */
export function canRestartServer(env: Record<string, string | undefined> = process.env): boolean {
  return clusterFromEnv(env) !== undefined;
}

/**
 * Stops the private cluster (`immediate` is a crash: no checkpoint, recovery on start)
 * and starts it again on the same port. Only for a private instance: pass the `env` of
 * the {@link StartedServer} (default: the run's shared cluster, via `process.env`).
 */
export async function restartPrivateServer(
  mode: 'immediate' | 'fast' = 'immediate',
  env: Record<string, string | undefined> = process.env,
): Promise<void> {
  const cluster = clusterFromEnv(env);
  if (!cluster) throw new Error('restartPrivateServer: not running against the private test cluster');
  await pgCtl(cluster, ['-m', mode, '-w', 'stop']);
  await startCluster(cluster);
}

/**
 * Starts a private cluster with a `test` database. Returns undefined when the binaries
 * are missing. `settings` override server settings (e.g. `max_prepared_transactions: '0'`).
 */
export async function startPrivateCluster(
  options: { settings?: Record<string, string> } = {},
): Promise<StartedServer | undefined> {
  const binDir = findPgBinDir();
  if (!binDir) return undefined;
  const isRoot = process.getuid?.() === 0;
  const runAs = isRoot ? 'postgres' : '';
  const base = await mkdtemp(path.join(os.tmpdir(), 'txkit-pg-'));
  const dataDir = path.join(base, 'data');
  const socketDir = path.join(base, 'sock');
  await mkdir(socketDir);
  if (isRoot) {
    const { stdout } = await run('id', ['-u', runAs]);
    const { stdout: gidOut } = await run('id', ['-g', runAs]);
    const uid = Number(stdout.trim());
    const gid = Number(gidOut.trim());
    await chown(base, uid, gid);
    await chown(socketDir, uid, gid);
  }
  await chmod(base, 0o700);
  const cluster: Cluster = { binDir, dataDir, socketDir, port: await freePort(), runAs };
  if (options.settings) cluster.settings = options.settings;
  await asOwner(cluster, path.join(binDir, 'initdb'), [
    '-D',
    dataDir,
    '-A',
    'trust',
    '-U',
    'postgres',
    '-E',
    'UTF8',
    '--locale=C',
    '--no-sync',
  ]);
  await startCluster(cluster);
  watchOwner(cluster, base);
  const admin = new pg.Client({
    host: '127.0.0.1',
    port: cluster.port,
    user: 'postgres',
    database: 'postgres',
  });
  await admin.connect();
  try {
    await admin.query('CREATE DATABASE test');
  } finally {
    await admin.end();
  }
  return {
    env: {
      TXKIT_PG_URL: `postgres://postgres@127.0.0.1:${cluster.port}/test`,
      TXKIT_PG_PRIVATE: '1',
      TXKIT_PG_DATA_DIR: dataDir,
      TXKIT_PG_BIN_DIR: binDir,
      TXKIT_PG_RUN_AS: runAs,
      TXKIT_PG_PORT: String(cluster.port),
      TXKIT_PG_SOCKET_DIR: socketDir,
    },
    async stop() {
      await pgCtl(cluster, ['-m', 'immediate', '-w', 'stop']).catch(() => {});
      await rm(base, { recursive: true, force: true });
    },
  };
}

/**
 * If this process dies without running teardown (killed by a timeout, crashed in another
 * backend's setup), a detached watchdog stops the cluster and removes its directory, so
 * no throwaway server outlives the run that started it.
 */
function watchOwner(cluster: Cluster, base: string): void {
  const pgCtlPath = path.join(cluster.binDir, 'pg_ctl');
  const stop = cluster.runAs
    ? `runuser -u ${cluster.runAs} -- "${pgCtlPath}" -D "${cluster.dataDir}" -m immediate -w stop`
    : `"${pgCtlPath}" -D "${cluster.dataDir}" -m immediate -w stop`;
  const script = `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done; ${stop} >/dev/null 2>&1; rm -rf "${base}"`;
  const child = spawn('sh', ['-c', script], { detached: true, stdio: 'ignore' });
  child.unref();
}

/** Global-setup entry: `TXKIT_PG_URL` if set, else a private cluster, else undefined. */
export async function startServer(): Promise<StartedServer | undefined> {
  const url = process.env.TXKIT_PG_URL;
  if (url) return { env: { TXKIT_PG_URL: url }, stop: async () => {} };
  return startPrivateCluster();
}
