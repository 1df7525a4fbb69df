/**
 * Optimistic transactions: WATCH, read, decide, MULTI/EXEC on a dedicated connection,
 * retried on conflict. Fifty concurrent "add 1" updates end at exactly +50: racing each
 * other, and then committed together in rounds (the default for one process).
 *
 *   REDIS_URL=redis://127.0.0.1:6379 npx tsx examples/redis-optimistic.ts
 */
import { Redis } from 'ioredis';
import { abort, redisTx } from '../src/redis/index.js';

const client = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
const tx = redisTx(client);
const key = `example:optimistic:${process.pid}`;
let retries = 0;
tx.events.on('retry', () => retries++);

try {
  await client.set(key, '800');

  // Add 100 only while the value is below 1000 (the condition runs on the watched value).
  for (let i = 0; i < 4; i++) {
    const r = await tx.optimistic([key], async (read) => {
      const v = Number(await read.get(key));
      if (v >= 1000) return abort('limit reached', v);
      return (m) => m.set(key, v + 100);
    });
    console.log(
      r.status,
      r.status === 'aborted' ? `${r.reason} at ${r.value}` : `after ${r.attempts} attempt(s)`,
    );
  }

  // Fifty racing updaters without the in-process queue: real WATCH conflicts, no lost update.
  await client.set(key, '0');
  const results = await Promise.all(
    Array.from({ length: 50 }, () =>
      tx.optimistic(
        [key],
        async (read) => {
          const v = Number(await read.get(key));
          return (m) => m.set(key, v + 1);
        },
        { localQueue: false, retry: { maxAttempts: 100 } },
      ),
    ),
  );
  const committed = results.filter((r) => r.status === 'committed').length;
  console.log(`committed ${committed}, final value ${await client.get(key)}`);
  console.log(
    'conflicts:',
    tx.metrics.counter('redis_tx_watch_conflicts_total', { op: 'optimistic' }),
    '- retries:',
    retries,
  );

  // The default: attempts on the same key in this process commit in rounds (one WATCH,
  // one EXEC for all that wait), each body seeing the value the one before it wrote.
  await client.set(key, '0');
  const before = tx.metrics.counter('redis_tx_watch_conflicts_total', { op: 'optimistic' });
  await Promise.all(
    Array.from({ length: 50 }, () =>
      tx.optimistic([key], async (read) => {
        const v = Number(await read.get(key));
        return (m) => m.set(key, v + 1);
      }),
    ),
  );
  const after = tx.metrics.counter('redis_tx_watch_conflicts_total', { op: 'optimistic' });
  console.log(`in rounds: final value ${await client.get(key)}, conflicts ${after - before}`);
} finally {
  await client.del(key);
  await tx.close();
  client.disconnect();
}
