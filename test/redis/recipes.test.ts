import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  deductStockScript,
  Inventory,
  RateLimiter,
  type RedisTx,
  slidingWindowScript,
  Transfers,
  transferScript,
} from '../../src/redis/index.js';
import { type client, prefix, url, useRedisTx } from './redis-test-env.js';

const run = promisify(execFile);

describe.skipIf(!url)('redis recipes (Lua with idempotency keys)', () => {
  let tx: RedisTx;
  let other: ReturnType<typeof client>;

  useRedisTx((t, o) => {
    tx = t;
    other = o;
  });

  it('bundled scripts take every key from KEYS (no literal key names in redis.call)', () => {
    for (const script of [deductStockScript, transferScript, slidingWindowScript]) {
      const literalKey =
        /redis\.call\(\s*'(GET|SET|DECRBY|INCRBY|HSET|HGET|HINCRBY|LPUSH|LTRIM|ZADD|ZCARD|TYPE)'\s*,\s*'/i;
      expect(script.lua).not.toMatch(literalKey);
      expect(script.lua).not.toMatch(/os\./); // Redis Lua has no os library; globals fail when run below
    }
  });

  describe('inventory', () => {
    it('the same order id applied twice changes stock once', async () => {
      const inv = new Inventory(tx, { prefix: prefix() });
      await inv.set('p1001', 100);
      const input = { productId: 'p1001', quantity: 5, userId: 'user123', orderId: 'order001' };
      expect(await inv.deduct(input)).toEqual({ ok: true, remaining: 95, previous: 100 });
      expect(await inv.deduct(input)).toEqual({ ok: false, reason: 'DUPLICATE_ORDER', remaining: 95 });
      expect(await inv.stock('p1001')).toBe(95);
      const keys = inv.keys('p1001');
      expect(await other.hgetall(keys.stats)).toEqual({ total_orders: '1', total_quantity: '5' });
      expect(JSON.parse((await other.hget(keys.orders, 'order001'))!)).toMatchObject({
        user: 'user123',
        quantity: 5,
        remaining: 95,
      });
    });

    it('10 concurrent buyers (9x5 + 1x10) against stock 50: never oversold, only INSUFFICIENT failures', async () => {
      const inv = new Inventory(tx, { prefix: prefix() });
      await inv.set('p1', 50);
      const quantities = [5, 5, 5, 5, 10, 5, 5, 5, 5, 5];
      const results = await Promise.all(
        quantities.map((quantity, i) =>
          inv.deduct({ productId: 'p1', quantity, userId: `u${i}`, orderId: `o${i}` }),
        ),
      );
      let sold = 0;
      results.forEach((r, i) => {
        if (r.ok) sold += quantities[i]!;
        else {
          expect(r.reason).toBe('INSUFFICIENT');
          if (r.reason === 'INSUFFICIENT') expect(r.available).toBeLessThan(quantities[i]!);
        }
      });
      // Demand is 55: either the 10 fits (sold 50, one 5 refused) or it comes last (sold 45).
      expect([45, 50]).toContain(sold);
      expect(await inv.stock('p1')).toBe(50 - sold);
    });

    it('rejects invalid quantities and unknown products without writing', async () => {
      const inv = new Inventory(tx, { prefix: prefix() });
      await inv.set('p2', 10);
      for (const quantity of [0, -3, 1.5, Number.NaN]) {
        expect(await inv.deduct({ productId: 'p2', quantity, userId: 'u', orderId: `o${quantity}` })).toEqual(
          {
            ok: false,
            reason: 'INVALID_QUANTITY',
          },
        );
      }
      expect(await inv.deduct({ productId: 'nope', quantity: 1, userId: 'u', orderId: 'o' })).toEqual({
        ok: false,
        reason: 'NOT_FOUND',
      });
      await expect(inv.set('p2', -1)).rejects.toThrow(/stock must be an integer >= 0, got -1/);
      await expect(inv.set('p2', 2.5)).rejects.toThrow(/stock must be an integer >= 0/);
      expect(await inv.stock('p2')).toBe(10);
      expect(() => inv.keys('bad{tag}')).toThrow(/without whitespace, '\{' or '\}'/);
    });

    it('validates key types before any write (a wrong-typed orders key changes nothing)', async () => {
      const inv = new Inventory(tx, { prefix: prefix() });
      await inv.set('p3', 10);
      await other.set(inv.keys('p3').orders, 'not a hash');
      await expect(
        inv.deduct({ productId: 'p3', quantity: 1, userId: 'u', orderId: 'o' }),
      ).rejects.toMatchObject({
        driverCode: 'WRONGTYPE',
      });
      expect(await inv.stock('p3')).toBe(10);
    });
  });

  describe('transfer', () => {
    it('moves money once per transfer id; a replay returns the first result', async () => {
      const bank = new Transfers(tx, { prefix: prefix() });
      await bank.open('alice', 1000);
      await bank.open('bob', 500);
      const first = await bank.transfer({ from: 'alice', to: 'bob', amount: 100, transferId: 't1' });
      expect(first).toEqual({ ok: true, fromBalance: 900, toBalance: 600, replayed: false });
      const replay = await bank.transfer({ from: 'alice', to: 'bob', amount: 100, transferId: 't1' });
      expect(replay).toEqual({ ok: true, fromBalance: 900, toBalance: 600, replayed: true });
      expect([await bank.balance('alice'), await bank.balance('bob')]).toEqual([900, 600]);
      expect(await other.llen(bank.logKey)).toBe(1);
    });

    it('1000 concurrent transfers out of 1000 never go negative and conserve the total', async () => {
      const bank = new Transfers(tx, { prefix: prefix(), maxLog: 100 });
      await bank.open('a', 1000);
      await bank.open('b', 0);
      await bank.open('c', 0);
      const results = await Promise.all(
        Array.from({ length: 1000 }, (_, i) =>
          bank.transfer({ from: 'a', to: i % 2 ? 'b' : 'c', amount: 1 + (i % 3), transferId: `x${i}` }),
        ),
      );
      const a = (await bank.balance('a'))!;
      const b = (await bank.balance('b'))!;
      const c = (await bank.balance('c'))!;
      expect(a).toBeGreaterThanOrEqual(0);
      expect(a + b + c).toBe(1000);
      const moved = results.reduce((sum, r, i) => sum + (r.ok ? 1 + (i % 3) : 0), 0);
      expect(1000 - a).toBe(moved);
      for (const r of results) if (!r.ok) expect(r.reason).toBe('INSUFFICIENT');
      expect(await other.llen(bank.logKey)).toBe(100);
    });

    it('refuses bad amounts, unknown accounts and overdrafts without writing', async () => {
      const bank = new Transfers(tx, { prefix: prefix() });
      await bank.open('a', 50);
      await bank.open('b', 0);
      await expect(bank.open('a', 10.25)).rejects.toThrow(
        /balance \(in minor units\) must be an integer >= 0/,
      );
      expect(await bank.balance('a')).toBe(50);
      expect(await bank.transfer({ from: 'a', to: 'b', amount: 0, transferId: 'z1' })).toEqual({
        ok: false,
        reason: 'INVALID_AMOUNT',
      });
      expect(await bank.transfer({ from: 'a', to: 'b', amount: 1.5, transferId: 'z2' })).toMatchObject({
        reason: 'INVALID_AMOUNT',
      });
      expect(await bank.transfer({ from: 'a', to: 'nobody', amount: 1, transferId: 'z3' })).toEqual({
        ok: false,
        reason: 'NOT_FOUND',
        account: 'to',
      });
      expect(await bank.transfer({ from: 'a', to: 'a', amount: 1, transferId: 'z4' })).toMatchObject({
        reason: 'SAME_ACCOUNT',
      });
      expect(await bank.transfer({ from: 'a', to: 'b', amount: 51, transferId: 'z5' })).toEqual({
        ok: false,
        reason: 'INSUFFICIENT',
        balance: 50,
      });
      expect([await bank.balance('a'), await bank.balance('b')]).toEqual([50, 0]);
    });
  });

  describe('rate limiter', () => {
    it('a burst of 1000 with max 100 allows exactly 100 (unique members, one window)', async () => {
      const limiter = new RateLimiter(tx, { windowMs: 60_000, max: 100, prefix: prefix() });
      const decisions = await Promise.all(Array.from({ length: 1000 }, () => limiter.check('burst')));
      expect(decisions.filter((d) => d.allowed)).toHaveLength(100);
      const denied = decisions.find((d) => !d.allowed)!;
      expect(denied).toMatchObject({ count: 100, remaining: 0 });
      expect(denied.retryAfterMs).toBeGreaterThan(59_000);
      expect(await other.zcard(limiter.key('burst'))).toBe(100);
    });

    it('seed parity: window 10 s, max 5 — the 6th request inside the window is denied', async () => {
      const limiter = new RateLimiter(tx, { windowMs: 10_000, max: 5, prefix: prefix() });
      const d: boolean[] = [];
      for (let i = 0; i < 15; i++) d.push((await limiter.check('user')).allowed);
      expect(d).toEqual([true, true, true, true, true, ...new Array(10).fill(false)]);
    });

    it('the window slides on the server clock: a slot frees when the oldest entry ages out', async () => {
      const limiter = new RateLimiter(tx, { windowMs: 300, max: 3, prefix: prefix() });
      const first = await limiter.check('s');
      expect(first).toMatchObject({ allowed: true, count: 1, remaining: 2 });
      await limiter.check('s');
      await limiter.check('s');
      const denied = await limiter.check('s');
      expect(denied.allowed).toBe(false);
      expect(denied.resetAtMs).toBeGreaterThanOrEqual(first.resetAtMs - 1);
      // Waiting for time to pass is the behaviour under test.
      await new Promise((r) => setTimeout(r, denied.retryAfterMs + 20));
      expect((await limiter.check('s')).allowed).toBe(true);
    });

    it('holds the limit across processes', async () => {
      const p = prefix();
      const worker = fileURLToPath(new URL('./fixtures/ratelimit-worker.ts', import.meta.url));
      const id = `${p.slice(2)}-mp`;
      const outputs = await Promise.all(
        [0, 1, 2].map(() =>
          run(process.execPath, ['--import', 'tsx', worker, id, '60', '50'], {
            env: process.env,
            timeout: 30_000,
          }),
        ),
      );
      const allowed = outputs.reduce((sum, o) => sum + Number(o.stdout.trim()), 0);
      expect(allowed).toBe(50);
    });

    it('rejects bad options', () => {
      expect(() => new RateLimiter(tx, { windowMs: 0 })).toThrow(/windowMs must be a positive integer/);
      expect(() => new RateLimiter(tx, { max: 2.5 })).toThrow(/max must be a positive integer/);
    });
  });
});
