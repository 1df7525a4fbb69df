import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CrossSlotError,
  Inventory,
  keySlot,
  RateLimiter,
  type RedisTx,
  redisTx,
  TransactionOutcomeUnknownError,
  Transfers,
} from '../../src/redis/index.js';
import { closeClients, clusterClient, clusterNodes, prefix, until } from './redis-test-env.js';

describe.skipIf(!clusterNodes)('redis cluster (3 masters)', () => {
  let tx: RedisTx;
  let other: ReturnType<typeof clusterClient>;

  beforeAll(() => {
    tx = redisTx(clusterClient());
    other = clusterClient();
  });
  afterAll(async () => {
    await tx.close();
    await closeClients();
  });

  it('computes the same slot as the server, hash tags included (property)', async () => {
    expect(keySlot('foo')).toBe(12182);
    expect(keySlot('{user1000}.following')).toBe(keySlot('{user1000}.followers'));
    expect(keySlot('foo{{bar}}zap')).toBe(keySlot('{bar'));
    for (const corner of ['foo{}{bar}', 'foo{{bar}}zap', '{}', '{a', 'a}b{c}', '{user1000}.following']) {
      expect(keySlot(corner)).toBe(await other.cluster('KEYSLOT', corner));
    }
    const key = fc.stringMatching(/^[a-z{}:]{0,12}$/).filter((k) => k.length > 0);
    await fc.assert(
      fc.asyncProperty(key, async (k) => {
        expect(keySlot(k)).toBe(await other.cluster('KEYSLOT', k));
      }),
      { numRuns: 60 },
    );
  });

  it('refuses a cross-slot MULTI before sending anything', async () => {
    const p = prefix();
    const a = `${p}:a`;
    let b = `${p}:b`;
    for (let i = 0; keySlot(b) === keySlot(a); i++) b = `${p}:b${i}`;
    await other.set(a, 'before');
    const err = await tx.multi((m) => m.set(a, 'after').set(b, 'x')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CrossSlotError);
    expect((err as CrossSlotError).message).toMatch(/hash tag/);
    expect((err as CrossSlotError).slots.size).toBe(2);
    expect(await other.get(a)).toBe('before');
    expect(await other.get(b)).toBeNull();
  });

  it('runs a MULTI whose keys share a hash tag', async () => {
    const tag = `{${prefix()}}`;
    const r = await tx.multi((m) => m.set(`${tag}:cart`, '3').incr(`${tag}:orders`).get(`${tag}:cart`));
    expect(r).toMatchObject({
      status: 'committed',
      replies: [{ value: 'OK' }, { value: 1 }, { value: '3' }],
    });
  });

  it('runs optimistic transactions on the slot owner and refuses cross-slot keys or writes', async () => {
    const tag = `{${prefix()}}`;
    const key = `${tag}:n`;
    await other.set(key, '0');
    const results = await Promise.all(
      Array.from({ length: 20 }, () =>
        tx.optimistic(
          [key],
          async (read) => {
            const v = Number(await read.get(key));
            return (m) => m.set(key, v + 1).incr(`${tag}:commits`);
          },
          { retry: { maxAttempts: 100, maxDelayMs: 5 } },
        ),
      ),
    );
    expect(results.every((r) => r.status === 'committed')).toBe(true);
    expect(await other.get(key)).toBe('20');
    await expect(tx.optimistic([key, `${prefix()}:elsewhere`], () => () => {})).rejects.toBeInstanceOf(
      CrossSlotError,
    );
    let far = `${prefix()}:far`;
    while (keySlot(far) === keySlot(key)) far = `${prefix()}:far`;
    await expect(tx.optimistic([key], () => (m) => m.set(far, '1'))).rejects.toBeInstanceOf(CrossSlotError);
    expect(await other.get(far)).toBeNull();
  });

  it('refuses cross-slot script keys and recovers from SCRIPT FLUSH on every master', async () => {
    const tag = `{${prefix()}}`;
    const copy = tx.scripts.define('copy', {
      numberOfKeys: 2,
      lua: "local v = redis.call('GET', KEYS[1]) redis.call('SET', KEYS[2], v) return v",
    });
    await other.set(`${tag}:src`, 'hello');
    await tx.scripts.load(copy);
    expect(await tx.scripts.exists(copy)).toEqual([true, true, true]);
    await tx.scripts.flush();
    expect(await tx.scripts.exists(copy)).toEqual([false, false, false]);
    expect(await tx.scripts.run(copy, [`${tag}:src`, `${tag}:dst`])).toBe('hello');
    await expect(tx.scripts.run(copy, [`${tag}:src`, `${prefix()}:dst`])).rejects.toBeInstanceOf(
      CrossSlotError,
    );
  });

  it('pipelines across slots with results aligned to the input; a cross-slot MSET fails alone', async () => {
    const p = prefix();
    const keys = Array.from({ length: 50 }, (_, i) => `${p}:${i}`);
    const r = await tx.pipeline((b) => {
      for (const k of keys) b.set(k, k);
      b.mset({ [keys[0]!]: 'x', [keys[1]!]: 'y' });
      for (const k of keys) b.get(k);
    });
    expect(r.replies).toHaveLength(101);
    expect(new Set(keys.map(keySlot)).size).toBeGreaterThan(3);
    const mset = r.replies[50]!;
    if (keySlot(keys[0]!) !== keySlot(keys[1]!)) {
      expect(mset.status).toBe('failed');
      if (mset.status === 'failed') expect(mset.error).toBeInstanceOf(CrossSlotError);
    }
    keys.forEach((k, i) => {
      expect(r.replies[51 + i]).toMatchObject({ ok: true, value: k });
    });
  });

  it('a node connection killed after EXEC was sent gives an unknown outcome, never a re-send', async () => {
    const tag = `{${prefix()}}`;
    const name = `txkit-cluster-victim-${tag.slice(3, -1)}`;
    const victim = redisTx(clusterClient({ connectionName: name }));
    await other.set(`${tag}:n`, '0'); // also loads the slot map
    const nodeKey = other.slots[keySlot(`${tag}:n`)]![0]!;
    const [host, port] = nodeKey.split(':');
    const admin = new Redis({ host: host!, port: Number(port) });
    try {
      await victim.multi((m) => m.get(`${tag}:warm`));
      await admin.call('client', 'pause', 60_000, 'WRITE');
      const pending = victim.multi((m) => m.incr(`${tag}:n`)).catch((e: unknown) => e);
      const blocked = async () =>
        ((await admin.call('client', 'list')) as string)
          .split('\n')
          .find((l) => l.includes(`name=${name}`) && /flags=\S*b/.test(l));
      await until(async () => (await blocked()) !== undefined);
      await admin.call('client', 'kill', 'id', /id=(\d+)/.exec((await blocked())!)![1]!);
      await admin.call('client', 'unpause');
      // Had ioredis re-sent the MULTI after the failover delay, this would resolve as committed.
      expect(await pending).toBeInstanceOf(TransactionOutcomeUnknownError);
      expect(await other.get(`${tag}:n`)).toBe('0');
    } finally {
      await admin.call('client', 'unpause').catch(() => {});
      admin.disconnect();
      await victim.close();
    }
  });

  it('runs the recipes in cluster mode (their keys share hash tags)', async () => {
    const inv = new Inventory(tx, { prefix: prefix() });
    await inv.set('p9', 10);
    expect(await inv.deduct({ productId: 'p9', quantity: 4, userId: 'u', orderId: 'o1' })).toMatchObject({
      ok: true,
      remaining: 6,
    });
    const bank = new Transfers(tx, { prefix: prefix() });
    await bank.open('a', 100);
    await bank.open('b', 0);
    expect(await bank.transfer({ from: 'a', to: 'b', amount: 30, transferId: 't' })).toMatchObject({
      ok: true,
    });
    const limiter = new RateLimiter(tx, { prefix: prefix(), max: 2 });
    const d = [await limiter.check('x'), await limiter.check('x'), await limiter.check('x')];
    expect(d.map((x) => x.allowed)).toEqual([true, true, false]);
  });
});
