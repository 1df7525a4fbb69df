import { describe, expect, it } from 'vitest';
import {
  InvalidArgumentError,
  InvalidOptionError,
  TransactionCancelledError,
} from '../../src/core/errors.js';
import {
  abort,
  ExecAbortError,
  type OptimisticOptions,
  type RedisEvents,
  type RedisTx,
  redisTx,
} from '../../src/redis/index.js';
import { client, prefix, url, useRedisTx } from './redis-test-env.js';

/** One optimistic GET + SET of `key` to its value plus one: the contended update under test. */
function increment(tx: RedisTx, key: string, options?: OptimisticOptions) {
  return tx.optimistic(
    [key],
    async (read) => {
      const v = Number(await read.get(key));
      return (m) => m.set(key, v + 1);
    },
    options,
  );
}

describe.skipIf(!url)('redis optimistic transactions (WATCH)', () => {
  let tx: RedisTx;
  let other: ReturnType<typeof client>;
  useRedisTx((t, o) => {
    tx = t;
    other = o;
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
            const r = await increment(contended, key, {
              retry: { maxAttempts: 1000, maxDelayMs: 5 },
              localQueue: false,
            });
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
      Array.from({ length: 100 }, () => increment(tx, key, { localQueue: false })),
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
          increment(instances[i % 4]!, key, { retry: { maxAttempts: 100, maxDelayMs: 5 } }),
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

  it('hands the connection on at EXEC: same-key attempts in one process never conflict', async () => {
    const p = prefix();
    const key = `${p}:handoff`;
    await other.set(key, '0');
    const solo = redisTx(client(), { poolSize: 10 });
    const clientIds = new Set<number>();
    try {
      const results = await Promise.all(
        Array.from({ length: 300 }, () =>
          solo.optimistic(
            [key],
            async (read) => {
              const [v, id] = await Promise.all([read.get(key), read.clientId()]);
              clientIds.add(id);
              return (m) => m.set(key, Number(v) + 1);
            },
            { retry: { maxAttempts: 1 } },
          ),
        ),
      );
      expect(results.every((r) => r.status === 'committed' && r.attempts === 1)).toBe(true);
      expect(await other.get(key)).toBe('300');
      expect(solo.metrics.counter('redis_tx_watch_conflicts_total', { op: 'optimistic' })).toBe(0);
      // Each WATCH was pipelined behind the previous EXEC on one socket.
      expect(clientIds.size).toBe(1);
    } finally {
      await solo.close();
    }
  });

  it('commits waiting same-key attempts in one round; a later body reads what earlier ones wrote', async () => {
    const p = prefix();
    const key = `${p}:round`;
    await other.set(key, '0');
    const solo = redisTx(client());
    const seen: number[] = [];
    try {
      const results = await Promise.all(
        Array.from({ length: 40 }, () =>
          solo.optimistic([key], async (read) => {
            const v = Number(await read.get(key));
            seen.push(v);
            return (m) => m.set(key, v + 1).incr(`${p}:execs`);
          }),
        ),
      );
      expect(results.every((r) => r.status === 'committed' && r.attempts === 1)).toBe(true);
      expect(await other.get(key)).toBe('40');
      expect([...seen].sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i));
      // Each attempt got its own replies: SET's OK and its own INCR result.
      const incrs = results.map((r) => {
        const reply = r.status === 'committed' ? r.replies[1] : undefined;
        return reply?.ok ? reply.value : null;
      });
      expect(new Set(incrs).size).toBe(40);
    } finally {
      await solo.close();
    }
  });

  it('a decision made on a value of its round stands only if the round commits', async () => {
    const p = prefix();
    const key = `${p}:stock`;
    await other.set(key, '1');
    const solo = redisTx(client());
    let interfered = false;
    try {
      const take = () =>
        solo.optimistic([key], async (read) => {
          const stock = Number(await read.get(key));
          if (!interfered) {
            interfered = true;
            await other.set(key, '5'); // restocked by another client: this round will conflict
          }
          if (stock < 1) return abort('sold out', stock);
          return (m) => m.set(key, stock - 1);
        });
      const [first, second] = await Promise.all([take(), take()]);
      // In the first round the second body saw 0 (the first one's pending write) and aborted;
      // the round conflicted, so that abort was void and both ran again on the restocked 5.
      expect(first.status).toBe('committed');
      expect(second.status).toBe('committed');
      expect(await other.get(key)).toBe('3');
    } finally {
      await solo.close();
    }
  });

  it('a read the round cannot answer waits for the next round instead of guessing', async () => {
    const p = prefix();
    const key = `${p}:hash`;
    const solo = redisTx(client());
    try {
      const results = await Promise.all(
        Array.from({ length: 30 }, () =>
          solo.optimistic([key], async (read) => {
            const n = Number((await read.hget(key, 'n')) ?? 0);
            return (m) => m.hset(key, { n: n + 1 });
          }),
        ),
      );
      expect(results.every((r) => r.status === 'committed' && r.attempts === 1)).toBe(true);
      expect(await other.hget(key, 'n')).toBe('30');
      expect(solo.metrics.counter('redis_tx_watch_conflicts_total', { op: 'optimistic' })).toBe(0);
    } finally {
      await solo.close();
    }
  });

  it('a command refused at queue time fails only the attempt that sent it; its round-mates commit', async () => {
    const p = prefix();
    const key = `${p}:blame`;
    await other.set(key, '0');
    const solo = redisTx(client());
    try {
      const results = await Promise.allSettled(
        Array.from({ length: 6 }, (_, i) =>
          solo.optimistic([key], async (read) => {
            const v = Number(await read.get(key));
            return i === 2 ? (m) => m.call('set', key) : (m) => m.set(key, v + 1); // SET with one argument
          }),
        ),
      );
      const failed = results.filter((r) => r.status === 'rejected');
      expect(failed).toHaveLength(1);
      const err = (failed[0] as PromiseRejectedResult).reason;
      expect(err).toBeInstanceOf(ExecAbortError);
      expect(err.previousErrors.map((e: { index: number }) => e.index)).toEqual([0]);
      expect(await other.get(key)).toBe('5');
    } finally {
      await solo.close();
    }
  });

  it("the WATCH written behind a round's EXEC guards the next round: a write in between is a conflict", async () => {
    const p = prefix();
    const key = `${p}:ahead`;
    await other.set(key, '0');
    const solo = redisTx(client());
    let secondRoundReads = 0;
    try {
      const first = increment(solo, key);
      const second = solo.optimistic([key], async (read) => {
        await read.call('strlen', key); // unknown after the first body's SET: waits for the next round
        const v = Number(await read.get(key));
        if (++secondRoundReads === 1) {
          expect(v).toBe(1); // read ahead right behind the first round's EXEC
          await other.set(key, '100'); // another client writes after that WATCH
        }
        return (m) => m.set(key, v + 1);
      });
      const [a, b] = await Promise.all([first, second]);
      expect(a.status).toBe('committed');
      expect(b).toMatchObject({ status: 'committed', attempts: 2 });
      expect(await other.get(key)).toBe('101');
    } finally {
      await solo.close();
    }
  });

  it('a lane under steady load gives its connection back between rounds while other key sets wait', async () => {
    const p = prefix();
    const single = redisTx(client(), { poolSize: 1, acquireTimeoutMs: 1000 });
    let busy = true;
    const load: Promise<unknown>[] = [];
    // New attempts on one key arrive on every turn of the event loop, so its lane never drains.
    const arrive = () => {
      if (!busy) return;
      for (let i = 0; i < 3; i++) load.push(increment(single, `${p}:hot`));
      setImmediate(arrive);
    };
    try {
      arrive();
      await load[0];
      const cold = await increment(single, `${p}:cold`); // PoolTimeoutError if it starves
      expect(cold.status).toBe('committed');
    } finally {
      busy = false;
      await Promise.allSettled(load);
      await single.close();
    }
    expect(await other.get(`${p}:hot`)).toBe(String(load.length));
  });

  it('a lane that goes idle clears the WATCH it wrote ahead before the connection is reused', async () => {
    const p = prefix();
    const single = redisTx(client(), { poolSize: 1 });
    try {
      await Promise.all(Array.from({ length: 20 }, () => increment(single, `${p}:x`)));
      await other.set(`${p}:x`, 'changed'); // would fail the next EXEC if the WATCH were left
      const next = await single.optimistic([`${p}:y`], () => (m) => m.set(`${p}:y`, '1'), {
        retry: { maxAttempts: 1 },
      });
      expect(next.status).toBe('committed');
    } finally {
      await single.close();
    }
  });

  it('an AbortSignal withdraws an attempt still waiting for its round; nothing of it is applied', async () => {
    const p = prefix();
    const key = `${p}:withdraw`;
    await other.set(key, '0');
    const solo = redisTx(client());
    let open!: () => void;
    const gate = new Promise<void>((r) => {
      open = r;
    });
    try {
      const first = solo.optimistic([key], async (read) => {
        const v = Number(await read.get(key));
        await gate; // holds the round while the second attempt waits in the lane
        return (m) => m.set(key, v + 1);
      });
      const controller = new AbortController();
      const second = increment(solo, key, { signal: controller.signal });
      controller.abort(new Error('user went away'));
      await expect(second).rejects.toBeInstanceOf(TransactionCancelledError);
      open();
      expect((await first).status).toBe('committed');
      expect(await other.get(key)).toBe('1');
    } finally {
      await solo.close();
    }
  });

  it('a connection killed under a queue of same-key attempts voids them; they retry on new ones', async () => {
    const p = prefix();
    const key = `${p}:handoff-kill`;
    await other.set(key, '0');
    const solo = redisTx(client(), { poolSize: 4 });
    let killed = false;
    try {
      const results = await Promise.all(
        Array.from({ length: 100 }, () =>
          solo.optimistic(
            [key],
            async (read) => {
              const v = Number(await read.get(key));
              if (v === 50 && !killed) {
                killed = true;
                await other.client('KILL', 'ID', String(await read.clientId()));
              }
              return (m) => m.set(key, v + 1);
            },
            { retry: { maxAttempts: 10, maxDelayMs: 5 } },
          ),
        ),
      );
      expect(killed).toBe(true);
      expect(results.every((r) => r.status === 'committed')).toBe(true);
      expect(await other.get(key)).toBe('100');
    } finally {
      await solo.close();
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
