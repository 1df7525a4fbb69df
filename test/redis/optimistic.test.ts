import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError, InvalidOptionError } from '../../src/core/errors.js';
import { abort, type RedisEvents, type RedisTx, redisTx } from '../../src/redis/index.js';
import { client, closeClients, prefix, url } from './redis-test-env.js';

describe.skipIf(!url)('redis optimistic transactions (WATCH)', () => {
  let tx: RedisTx;
  let other: ReturnType<typeof client>;

  beforeAll(() => {
    tx = redisTx(client());
    other = client();
  });
  afterAll(async () => {
    await tx.close();
    await closeClients();
  });

  it('a write by a second client between WATCH and EXEC is a conflict: nothing applied', async () => {
    const p = prefix();
    const key = `${p}:balance`;
    await other.set(key, '100');
    const outcomes: string[] = [];
    const off = tx.events.on('attempt', (e) => outcomes.push(e.outcome));
    const result = await tx.optimistic(
      [key],
      async (read) => {
        const balance = Number(await read.get(key));
        await other.set(key, '7'); // the second client
        return (m) => m.set(key, balance + 50).set(`${p}:audit`, 'x');
      },
      { retry: { maxAttempts: 1 } },
    );
    off();
    expect(result).toEqual({ status: 'conflict-exhausted', attempts: 1 });
    expect(outcomes).toEqual(['conflict']);
    expect(await other.mget(key, `${p}:audit`)).toEqual(['7', null]);
    expect(tx.metrics.counter('redis_tx_watch_conflicts_total', { op: 'optimistic' })).toBeGreaterThan(0);
  });

  it('retries after a conflict and commits on fresh reads', async () => {
    const p = prefix();
    const key = `${p}:counter`;
    await other.set(key, '100');
    const retries: RedisEvents['retry'][] = [];
    const off = tx.events.on('retry', (e) => retries.push(e));
    let calls = 0;
    const result = await tx.optimistic([key], async (read) => {
      const v = Number(await read.get(key));
      if (++calls === 1) await other.incrby(key, 1000);
      return (m) => m.set(key, v + 50);
    });
    off();
    expect(result.status).toBe('committed');
    expect(result.attempts).toBe(2);
    expect(retries).toHaveLength(1);
    expect(retries[0]!.delayMs).toBeLessThanOrEqual(10); // full jitter over the 10 ms base
    expect(await other.get(key)).toBe('1150');
  });

  it('100 concurrent updaters x 10 increments end at the exact count', async () => {
    const p = prefix();
    const key = `${p}:hot`;
    await other.set(key, '0');
    const contended = redisTx(client(), { poolSize: 10 });
    try {
      const results = await Promise.all(
        Array.from({ length: 100 }, async () => {
          let attempts = 0;
          for (let i = 0; i < 10; i++) {
            const r = await contended.optimistic(
              [key],
              async (read) => {
                const v = Number(await read.get(key));
                return (m) => m.set(key, v + 1);
              },
              { retry: { maxAttempts: 1000, maxDelayMs: 5 }, localQueue: false },
            );
            expect(r.status).toBe('committed');
            attempts += r.attempts;
          }
          return attempts;
        }),
      );
      expect(await other.get(key)).toBe('1000');
      const attempts = results.reduce((a, b) => a + b, 0);
      expect(attempts).toBeGreaterThan(1000); // there was contention
      expect(contended.metrics.counter('redis_tx_watch_conflicts_total', { op: 'optimistic' })).toBe(
        attempts - 1000,
      );
      expect(contended.metrics.counter('redis_tx_total', { op: 'optimistic', status: 'committed' })).toBe(
        1000,
      );
    } finally {
      await contended.close();
    }
  });

  it('a conflict storm with the default 5 attempts loses no update and reports exhaustion as a status', async () => {
    const p = prefix();
    const key = `${p}:storm`;
    await other.set(key, '0');
    const results = await Promise.all(
      Array.from({ length: 100 }, () =>
        tx.optimistic(
          [key],
          async (read) => {
            const v = Number(await read.get(key));
            return (m) => m.set(key, v + 1);
          },
          { localQueue: false },
        ),
      ),
    );
    const committed = results.filter((r) => r.status === 'committed').length;
    const exhausted = results.filter((r) => r.status === 'conflict-exhausted');
    expect(committed + exhausted.length).toBe(100);
    for (const r of exhausted) expect(r.attempts).toBe(5);
    for (const r of results) expect(r.attempts).toBeLessThanOrEqual(5);
    expect(Number(await other.get(key))).toBe(committed);
  });

  it('queues same-key attempts in-process by default: no self-inflicted conflicts, exact count', async () => {
    const p = prefix();
    const key = `${p}:queued`;
    await other.set(key, '0');
    // Four instances stand in for four processes: WATCH still arbitrates between them.
    const instances = [0, 1, 2, 3].map(() => redisTx(client(), { poolSize: 5 }));
    try {
      const results = await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          instances[i % 4]!.optimistic(
            [key],
            async (read) => {
              const v = Number(await read.get(key));
              return (m) => m.set(key, v + 1);
            },
            { retry: { maxAttempts: 100, maxDelayMs: 5 } },
          ),
        ),
      );
      expect(results.every((r) => r.status === 'committed')).toBe(true);
      expect(await other.get(key)).toBe('200');
      const attempts = results.reduce((sum, r) => sum + r.attempts, 0);
      const conflicts = instances.reduce(
        (sum, t) => sum + t.metrics.counter('redis_tx_watch_conflicts_total', { op: 'optimistic' }),
        0,
      );
      expect(conflicts).toBe(attempts - 200);
      // At most the other three instances can interfere with each commit.
      expect(conflicts).toBeLessThan(200 * 3);
    } finally {
      await Promise.all(instances.map((t) => t.close()));
    }
  });

  it('abort(reason) sends UNWATCH, so a later transaction on the same connection is not poisoned', async () => {
    const p = prefix();
    const single = redisTx(client(), { poolSize: 1 });
    try {
      await other.set(`${p}:v`, '800');
      const add100 = () =>
        single.optimistic([`${p}:v`], async (read) => {
          const v = Number(await read.get(`${p}:v`));
          if (v >= 1000) return abort('condition', v);
          return (m) => m.set(`${p}:v`, v + 100);
        });
      expect((await add100()).status).toBe('committed');
      expect((await add100()).status).toBe('committed');
      expect(await add100()).toEqual({ status: 'aborted', reason: 'condition', value: 1000, attempts: 1 });
      // If the aborted attempt had left its WATCH, this write would make the next EXEC fail.
      await other.set(`${p}:v`, 'changed');
      const next = await single.optimistic([`${p}:w`], () => (m) => m.set(`${p}:w`, '1'), {
        retry: { maxAttempts: 1 },
      });
      expect(next.status).toBe('committed');
    } finally {
      await single.close();
    }
  });

  it('a body that throws propagates its error after UNWATCH', async () => {
    const p = prefix();
    const single = redisTx(client(), { poolSize: 1 });
    try {
      const boom = new Error('update failed');
      await expect(
        single.optimistic([`${p}:a`], async (read) => {
          await read.get(`${p}:a`);
          throw boom;
        }),
      ).rejects.toBe(boom);
      await other.set(`${p}:a`, 'changed');
      const next = await single.optimistic([`${p}:b`], () => (m) => m.set(`${p}:b`, '1'), {
        retry: { maxAttempts: 1 },
      });
      expect(next.status).toBe('committed');
    } finally {
      await single.close();
    }
  });

  it('a connection lost between WATCH and EXEC voids the attempt; the retry runs on a new connection', async () => {
    const p = prefix();
    const key = `${p}:k`;
    await other.set(key, '1');
    const admin = client();
    const outcomes: string[] = [];
    const off = tx.events.on('attempt', (e) => outcomes.push(e.outcome));
    const ids: number[] = [];
    const result = await tx.optimistic([key], async (read) => {
      const v = Number(await read.get(key));
      ids.push(await read.clientId());
      if (read.attempt === 1) {
        await admin.call('client', 'kill', 'id', String(ids[0]));
        // The next read cannot be answered: it observes the close.
        await read.get(key).catch(() => {});
      }
      return (m) => m.set(key, v + 1);
    });
    off();
    expect(result).toMatchObject({ status: 'committed', attempts: 2 });
    expect(outcomes).toEqual(['voided', 'committed']);
    expect(ids[1]).not.toBe(ids[0]);
    expect(await other.get(key)).toBe('2');
  });

  it('runs reads on the dedicated connection only while the body runs', async () => {
    const p = prefix();
    let saved: { get(k: string): Promise<unknown> } | undefined;
    await tx.optimistic([`${p}:k`], (read) => {
      saved = read;
      return abort('done');
    });
    await expect(saved!.get(`${p}:k`)).rejects.toThrow(/attempt is over/);
  });

  it('rejects bad keys and options with a message saying what is allowed', async () => {
    await expect(tx.optimistic([], () => abort('x'))).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(tx.optimistic(['k'], () => abort('x'), { retry: { maxAttempts: 0 } })).rejects.toThrow(
      /maxAttempts must be an integer >= 1/,
    );
    await expect(
      tx.optimistic(['k'], () => abort('x'), { retry: { retryOn: () => true } as never }),
    ).rejects.toBeInstanceOf(InvalidOptionError);
    await expect(tx.optimistic(['k'], (() => 42) as never)).rejects.toThrow(/must return a function/);
  });
});
