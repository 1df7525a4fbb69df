/** Shared helpers for the Redis test files: the server URL, fresh clients, unique key prefixes. */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { type RedisTx, redisTx } from '../../src/redis/index.js';
import { freePort, startRedisProcess, stopProcess } from '../support/redis-server.js';

export const url = process.env.TXKIT_REDIS_URL;
export const clusterNodes = process.env.TXKIT_REDIS_CLUSTER_NODES;

const opened: Array<Redis | Cluster> = [];

/** A new plain ioredis client (closed by {@link closeClients}). */
export function client(options: { connectionName?: string; url?: string } = {}): Redis {
  const { url: at, ...rest } = options;
  const c = new Redis(at ?? url!, { ...rest, lazyConnect: false });
  opened.push(c);
  return c;
}

/** A new ioredis Cluster client on the test cluster. */
export function clusterClient(options: { connectionName?: string } = {}): Cluster {
  const seeds = clusterNodes!.split(',').map((hp) => {
    const [host, port] = hp.split(':');
    return { host: host!, port: Number(port) };
  });
  const c = new Cluster(
    seeds,
    options.connectionName ? { redisOptions: { connectionName: options.connectionName } } : {},
  );
  opened.push(c);
  return c;
}

export async function closeClients(): Promise<void> {
  for (const c of opened.splice(0)) c.disconnect();
}

/** A key prefix no other test (or concurrent test file) uses. */
export function prefix(): string {
  return `t:${randomBytes(6).toString('hex')}`;
}

/** Resolves once `predicate` holds, polling the server (fault tests wait on server-side state). */
export async function until(predicate: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** True when a throwaway redis-server can be started for tests that pause or kill a whole server. */
export const canStartPrivate = existsSync(process.env.TXKIT_REDIS_SERVER_BIN ?? '/usr/bin/redis-server');

/**
 * A throwaway redis-server of its own, for fault tests whose server-wide effects
 * (CLIENT PAUSE) must not reach other test files.
 */
export async function privateServer(): Promise<{ url: string; stop(): Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'txkit-redis-fault-'));
  const proc = await startRedisProcess(dir, await freePort());
  return {
    url: `redis://127.0.0.1:${proc.port}`,
    async stop() {
      await stopProcess(proc);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * For a test file: before its tests, a `redisTx` on a client of its own and a second plain
 * client (`other`, the "another client" of the tests) are handed to `use`; after them both
 * are closed.
 */
export function useRedisTx(use: (tx: RedisTx, other: Redis) => void): void {
  let tx: RedisTx | undefined;
  beforeAll(() => {
    tx = redisTx(client());
    use(tx, client());
  });
  afterAll(async () => {
    await tx?.close();
    await closeClients();
  });
}
