import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidOptionError } from '../../src/core/errors.js';
import {
  type CommandTuple,
  type RedisTx,
  redisTx,
  TransactionOutcomeUnknownError,
} from '../../src/redis/index.js';
import { client, closeClients, prefix, until, url } from './redis-test-env.js';

describe.skipIf(!url)('redis pipelines', () => {
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

  /** Holds write commands server-side until the test kills txkit's connection. */
  async function killWhileBlocked(name: string, run: () => Promise<unknown>): Promise<unknown> {
    const admin = client();
    await admin.call('client', 'pause', 60_000, 'WRITE');
    try {
      const pending = run();
      const blocked = async () =>
        ((await admin.call('client', 'list')) as string)
          .split('\n')
          .find((l) => l.includes(`name=${name}`) && /flags=\S*b/.test(l));
      await until(async () => (await blocked()) !== undefined);
      const id = /id=(\d+)/.exec((await blocked())!)![1]!;
      await admin.call('client', 'kill', 'id', id);
      await admin.call('client', 'unpause');
      return await pending;
    } finally {
      await admin.call('client', 'unpause').catch(() => {});
    }
  }

  it('never re-sends a non-idempotent batch after the connection failed: unknown, then not-attempted', async () => {
    const p = prefix();
    const name = `txkit-pipe-${p.slice(2)}`;
    const victim = redisTx(client({ connectionName: name }));
    try {
      await victim.pipeline([['ping']]);
      const r = (await killWhileBlocked(name, () =>
        victim.pipeline(
          [
            ['incr', `${p}:n`],
            ['incr', `${p}:n`],
            ['incr', `${p}:n`],
          ],
          { batchSize: 2 },
        ),
      )) as Awaited<ReturnType<RedisTx['pipeline']>>;
      expect(r.replies.map((x) => x.status)).toEqual(['unknown', 'unknown', 'not-attempted']);
      const first = r.replies[0]!;
      if (first.status === 'unknown') expect(first.error).toBeInstanceOf(TransactionOutcomeUnknownError);
      // Killed while held by the pause: never run, and never re-sent after the reconnect.
      expect(await other.get(`${p}:n`)).toBeNull();
      expect((await victim.pipeline([['get', `${p}:n`]])).replies[0]).toMatchObject({ value: null });
    } finally {
      await victim.close();
    }
  });

  it('re-sends a batch of idempotent commands after the connection failed', async () => {
    const p = prefix();
    const name = `txkit-pipe-idem-${p.slice(2)}`;
    const victim = redisTx(client({ connectionName: name }));
    try {
      await victim.pipeline([['ping']]);
      const r = (await killWhileBlocked(name, () =>
        victim.pipeline([
          ['set', `${p}:a`, '1'],
          ['del', `${p}:b`],
        ]),
      )) as Awaited<ReturnType<RedisTx['pipeline']>>;
      expect(r.replies.map((x) => x.status)).toEqual(['applied', 'applied']);
      expect(await other.get(`${p}:a`)).toBe('1');
    } finally {
      await victim.close();
    }
  });

  it('is at least 3x faster than awaiting each command (1000 SETs on loopback)', async () => {
    const p = prefix();
    const plain = client();
    await plain.ping();
    // Best of three each, after a warm-up, so a busy CI machine does not decide the ratio.
    let sequential = Number.POSITIVE_INFINITY;
    let pipelined = Number.POSITIVE_INFINITY;
    for (let round = 0; round < 4; round++) {
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
    expect(sequential / pipelined).toBeGreaterThanOrEqual(3);
  });
});
