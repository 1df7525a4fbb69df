/**
 * Redis benchmark: `npm run build && npx tsx bench/redis.ts` (uses TXKIT_REDIS_URL, or starts a private
 * redis-server on a free loopback port).
 *
 * 1. Many concurrent increments of one hot key: txkit's optimistic runner (WATCH/GET/SET),
 *    a Lua script, plain INCR, and a naive GET+SET without WATCH for contrast. For each:
 *    throughput, conflicts, lost updates (expected − observed).
 * 2. MULTI/EXEC through txkit vs raw ioredis `multi()…exec()`: throughput and overhead.
 *
 * Environment knobs: BENCH_INCREMENTS (default 20000; each method first runs up to 5000
 * unmeasured to warm up), BENCH_CONCURRENCY (50),
 * BENCH_MULTI (20000), BENCH_POOL (10), BENCH_ROUNDS (5: alternating optimistic/Lua runs
 * whose median ratio is reported).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { redisTx } from '../dist/redis/index.js';
import { freePort, startRedisProcess, stopProcess } from '../test/support/redis-server.js';

const INCREMENTS = Number(process.env.BENCH_INCREMENTS ?? 20_000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 50);
const MULTI_OPS = Number(process.env.BENCH_MULTI ?? 20_000);
const POOL = Number(process.env.BENCH_POOL ?? 10);
const WARMUP = Math.min(INCREMENTS, 5000);
const HEAD_TO_HEAD = Number(process.env.BENCH_ROUNDS ?? 5);

async function withServer<T>(fn: (url: string) => Promise<T>): Promise<T> {
  if (process.env.TXKIT_REDIS_URL) return fn(process.env.TXKIT_REDIS_URL);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'txkit-redis-bench-'));
  const proc = await startRedisProcess(dir, await freePort());
  try {
    return await fn(`redis://127.0.0.1:${proc.port}`);
  } finally {
    await stopProcess(proc);
    await rm(dir, { recursive: true, force: true });
  }
}

/** Runs `total` operations with `concurrency` in flight; returns elapsed ms. */
async function drive(total: number, concurrency: number, op: (i: number) => Promise<void>): Promise<number> {
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) await op(next++);
    }),
  );
  return performance.now() - start;
}

interface Row {
  name: string;
  ms: number;
  committed: number;
  conflicts: number;
  failed: number;
  lost: number;
}

function printRows(title: string, rows: Row[], baseline: string): void {
  const base = rows.find((r) => r.name === baseline)!;
  const baseRate = base.committed / (base.ms / 1000);
  console.log(`\n${title}`);
  console.log(
    'method'.padEnd(34) +
      'ops/s'.padStart(10) +
      'x Lua'.padStart(10) +
      'committed'.padStart(11) +
      'conflicts'.padStart(11) +
      'gave up'.padStart(9) +
      'lost'.padStart(7),
  );
  for (const r of rows) {
    const rate = r.committed / (r.ms / 1000);
    console.log(
      r.name.padEnd(34) +
        rate.toFixed(0).padStart(10) +
        `${(rate / baseRate).toFixed(2)}x`.padStart(10) +
        String(r.committed).padStart(11) +
        String(r.conflicts).padStart(11) +
        String(r.failed).padStart(9) +
        String(r.lost).padStart(7),
    );
  }
}

async function hotKey(url: string): Promise<void> {
  const client = new Redis(url);
  const tx = redisTx(client, { poolSize: POOL });
  const key = 'bench:hot';
  const rows: Row[] = [];

  const measure = async (name: string, op: () => Promise<'ok' | 'gave-up'>, conflicts: () => number) => {
    // Warm up first so every method is measured with its code optimized.
    await drive(WARMUP, CONCURRENCY, async () => {
      await op();
    });
    await client.set(key, '0');
    const before = conflicts();
    let committed = 0;
    let failed = 0;
    const ms = await drive(INCREMENTS, CONCURRENCY, async () => {
      if ((await op()) === 'ok') committed++;
      else failed++;
    });
    const observed = Number(await client.get(key));
    rows.push({ name, ms, committed, conflicts: conflicts() - before, failed, lost: committed - observed });
  };

  const watchConflicts = () => tx.metrics.counter('redis_tx_watch_conflicts_total', { op: 'optimistic' });
  const optimisticIncrement = (options: Parameters<typeof tx.optimistic>[2]) => async () => {
    const r = await tx.optimistic(
      [key],
      async (read) => {
        const v = Number(await read.get(key));
        return (m) => m.set(key, v + 1);
      },
      options,
    );
    return r.status === 'committed' ? ('ok' as const) : ('gave-up' as const);
  };
  const optimisticDefault = optimisticIncrement({});
  await measure('txkit optimistic (default)', optimisticDefault, watchConflicts);
  await measure(
    'txkit optimistic, no local queue',
    optimisticIncrement({ localQueue: false, retry: { maxAttempts: 1000 } }),
    watchConflicts,
  );
  await measure('  same, spec retry defaults', optimisticIncrement({ localQueue: false }), watchConflicts);
  const incrScript = tx.scripts.define('bench-incr', {
    numberOfKeys: 1,
    lua: "local v = tonumber(redis.call('GET', KEYS[1]) or '0') redis.call('SET', KEYS[1], v + 1) return v + 1",
  });
  const luaIncrement = async () => {
    await tx.scripts.run(incrScript, [key]);
    return 'ok' as const;
  };
  await measure('txkit Lua script (GET+SET)', luaIncrement, () => 0);
  await measure(
    'plain INCR (ioredis)',
    async () => {
      await client.incr(key);
      return 'ok';
    },
    () => 0,
  );
  await measure(
    'naive GET+SET, no WATCH (wrong)',
    async () => {
      const v = Number(await client.get(key));
      await client.set(key, v + 1);
      return 'ok';
    },
    () => 0,
  );
  printRows(
    `Hot key: ${INCREMENTS} increments, ${CONCURRENCY} concurrent callers`,
    rows,
    'txkit Lua script (GET+SET)',
  );
  // One pass of each is short and noisy: alternate the two that the target compares.
  const ratios: number[] = [];
  for (let round = 0; round < HEAD_TO_HEAD; round++) {
    const before = rows.length;
    await measure('optimistic', optimisticDefault, watchConflicts);
    await measure('lua', luaIncrement, () => 0);
    const [opt, lua] = rows.splice(before, 2) as [Row, Row];
    if (opt.lost !== 0 || lua.lost !== 0) throw new Error('lost updates through txkit');
    ratios.push(opt.committed / opt.ms / (lua.committed / lua.ms));
  }
  const sorted = [...ratios].sort((a, b) => a - b);
  console.log(
    `optimistic / Lua throughput, ${HEAD_TO_HEAD} alternating runs: ${ratios.map((r) => r.toFixed(2)).join(' ')}; ` +
      `median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(2)}x (target >= 0.5x); ` +
      `lost updates through txkit: ${rows.slice(0, 4).reduce((sum, r) => sum + r.lost, 0)}`,
  );
  await tx.close();
  client.disconnect();
}

async function multiOverhead(url: string): Promise<void> {
  const raw = new Redis(url);
  const forTx = new Redis(url);
  const tx = redisTx(forTx);
  await tx.multi((m) => m.get('warm'));
  await raw.ping();
  const best = { raw: Number.POSITIVE_INFINITY, txkit: Number.POSITIVE_INFINITY };
  // Alternate rounds so drift in machine load hits both sides; keep the best of each.
  for (let round = 0; round < 4; round++) {
    const rawMs = await drive(MULTI_OPS, CONCURRENCY, async (i) => {
      const r = await raw
        .multi()
        .incr('bench:m:n')
        .set(`bench:m:${i % 100}`, 'v')
        .exec();
      if (!r) throw new Error('raw multi returned null');
    });
    const txMs = await drive(MULTI_OPS, CONCURRENCY, async (i) => {
      const r = await tx.multi((m) => m.incr('bench:m:n').set(`bench:m:${i % 100}`, 'v'));
      if (r.status !== 'committed' || r.hasErrors) throw new Error('txkit multi failed');
    });
    if (round === 0) continue; // warm-up
    best.raw = Math.min(best.raw, rawMs);
    best.txkit = Math.min(best.txkit, txMs);
  }
  const rawRate = MULTI_OPS / (best.raw / 1000);
  const txRate = MULTI_OPS / (best.txkit / 1000);
  console.log(`\nMULTI/EXEC (INCR + SET), ${MULTI_OPS} transactions, ${CONCURRENCY} in flight, best of 3`);
  console.log(`${'raw ioredis multi().exec()'.padEnd(34)}${rawRate.toFixed(0).padStart(10)} tx/s`);
  console.log(
    `${'txkit redisTx().multi()'.padEnd(34)}${txRate.toFixed(0).padStart(10)} tx/s   ` +
      `${(txRate / rawRate).toFixed(2)}x raw, overhead ${((best.txkit / best.raw - 1) * 100).toFixed(1)}% (target <= 5%)`,
  );
  await tx.close();
  forTx.disconnect();
  raw.disconnect();
}

await withServer(async (url) => {
  await hotKey(url);
  await multiOverhead(url);
});
