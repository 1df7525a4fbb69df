import { describe, expect, it } from 'vitest';
import { InvalidOptionError } from '../../src/core/errors.js';
import type { CommandTuple, RedisTx } from '../../src/redis/index.js';
import { client, prefix, url, useRedisTx } from './redis-test-env.js';

describe.skipIf(!url)('redis pipelines', () => {
  let tx: RedisTx;
  let other: ReturnType<typeof client>;
  useRedisTx((t, o) => {
    tx = t;
    other = o;
  });

  it('returns 8 results in order for the basic example', async () => {
    const p = prefix();
    const r = await tx.pipeline((b) =>
      b
        .set(`${p}:user:1:name`, 'Alice')
        .set(`${p}:user:1:email`, 'alice@example.com')
        .set(`${p}:user:1:age`, '25')
        .incr(`${p}:user:1:visits`)
        .incrby(`${p}:user:1:score`, 3)
        .expire(`${p}:user:1:name`, 86_400)
        .expire(`${p}:user:1:email`, 86_400)
        .expire(`${p}:user:1:age`, 86_400),
    );
    expect(r.replies.map((x) => (x.ok ? x.value : x.status))).toEqual(['OK', 'OK', 'OK', 1, 3, 1, 1, 1]);
    expect(r).toMatchObject({ applied: 8, failed: 0, unknown: 0, notAttempted: 0 });
  });

  it('batches (default 500) and reports a failing command alone', async () => {
    const p = prefix();
    await other.rpush(`${p}:list`, 'x');
    const sizes: number[] = [];
    const tuples: CommandTuple[] = [];
    for (let i = 0; i < 1200; i++)
      tuples.push(i === 700 ? ['get', `${p}:list`] : ['set', `${p}:${i}`, String(i)]);
    const r = await tx.pipeline(tuples, { onBatch: (b) => sizes.push(b.batchSize) });
    expect(sizes).toEqual([500, 500, 200]);
    expect(r.replies).toHaveLength(1200);
    expect(r).toMatchObject({ applied: 1199, failed: 1 });
    const bad = r.replies[700]!;
    expect(bad.status).toBe('failed');
    if (bad.status === 'failed') expect(bad.error.driverCode).toBe('WRONGTYPE');
    expect(await other.get(`${p}:1199`)).toBe('1199');
  });

  it('accepts an async iterable and honours batchSize', async () => {
    const p = prefix();
    async function* gen(): AsyncGenerator<CommandTuple> {
      for (let i = 0; i < 250; i++) yield ['rpush', `${p}:q`, String(i)];
    }
    const sizes: number[] = [];
    const r = await tx.pipeline(gen(), { batchSize: 100, onBatch: (b) => sizes.push(b.batchSize) });
    expect(sizes).toEqual([100, 100, 50]);
    expect(r.applied).toBe(250);
    expect(await other.llen(`${p}:q`)).toBe(250);
  });

  it('rejects batch sizes outside 1–10000', async () => {
    for (const batchSize of [0, 10_001, 1.5, Number.NaN]) {
      await expect(tx.pipeline([['ping']], { batchSize })).rejects.toBeInstanceOf(InvalidOptionError);
    }
    await expect(tx.pipeline([['ping']], { batchSize: 0 })).rejects.toThrow(/integer from 1 to 10000/);
  });

  it('is clearly faster than awaiting each command (1000 SETs on loopback; figures logged)', async () => {
    const p = prefix();
    const plain = client();
    await plain.ping();
    // Best of six each, after a warm-up, so a busy (2-core, shared) machine does not decide the ratio.
    let sequential = Number.POSITIVE_INFINITY;
    let pipelined = Number.POSITIVE_INFINITY;
    for (let round = 0; round < 7; round++) {
      const t0 = performance.now();
      for (let i = 0; i < 1000; i++) await plain.set(`${p}:s${i}`, 'v');
      const seq = performance.now() - t0;
      const t1 = performance.now();
      const r = await tx.pipeline((b) => {
        for (let i = 0; i < 1000; i++) b.set(`${p}:p${i}`, 'v');
      });
      const pipe = performance.now() - t1;
      expect(r.applied).toBe(1000);
      if (round === 0) continue;
      sequential = Math.min(sequential, seq);
      pipelined = Math.min(pipelined, pipe);
    }
    console.log(
      `[redis] 1000 SETs: sequential ${sequential.toFixed(1)} ms, pipeline ${pipelined.toFixed(1)} ms ` +
        `(${(sequential / pipelined).toFixed(1)}x)`,
    );
    // Loose on purpose: loopback round trips here are ~15 µs, so the real ratio is 3–25x and
    // swings with machine load; 1.5x still catches a pipeline that waits per command.
    expect(sequential / pipelined).toBeGreaterThanOrEqual(1.5);
  });
});
