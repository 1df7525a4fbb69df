import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/core/errors.js';
import { decodeJson, defineScript, type RedisTx, redisTx, ScriptError } from '../../src/redis/index.js';
import { client, prefix, url, useRedisTx } from './redis-test-env.js';

/** GET two numbers, multiply, SET the product (validated with tonumber). */
const MUL = `
local a = tonumber(redis.call('GET', KEYS[1]))
local b = tonumber(redis.call('GET', KEYS[2]))
if a == nil or b == nil then return redis.error_reply('ERR_NOT_NUMBER operands must be numbers') end
redis.call('SET', KEYS[3], a * b)
return a * b
`;

describe.skipIf(!url)('redis scripts', () => {
  let tx: RedisTx;
  let other: ReturnType<typeof client>;
  useRedisTx((t, o) => {
    tx = t;
    other = o;
  });

  it('runs by EVALSHA and recovers from NOSCRIPT after SCRIPT FLUSH', async () => {
    const p = prefix();
    const mul = tx.scripts.define('mul', { numberOfKeys: 3, lua: MUL });
    await other.mset(`${p}:a`, '10', `${p}:b`, '3');
    const seen: string[] = [];
    const off = tx.events.on('noscript', (e) => seen.push(e.script));
    expect(await tx.scripts.run(mul, [`${p}:a`, `${p}:b`, `${p}:r`])).toBe(30);
    const before = tx.metrics.counter('redis_script_noscript_fallbacks_total', { script: 'mul' });
    await tx.scripts.flush();
    expect(await tx.scripts.exists('mul')).toEqual([false]);
    expect(await tx.scripts.run('mul', [`${p}:a`, `${p}:b`, `${p}:r`])).toBe(30);
    off();
    expect(tx.metrics.counter('redis_script_noscript_fallbacks_total', { script: 'mul' })).toBe(before + 1);
    expect(seen).toContain('mul');
    expect(await tx.scripts.exists('mul')).toEqual([true]);
    expect(await other.get(`${p}:r`)).toBe('30');
  });

  it('runs inside MULTI right after SCRIPT FLUSH (first use is EVAL, later uses EVALSHA)', async () => {
    const p = prefix();
    const mul = tx.scripts.define('mul', { numberOfKeys: 3, lua: MUL });
    await other.mset(`${p}:a`, '6', `${p}:b`, '7');
    await tx.scripts.flush();
    const r = await tx.multi((m) =>
      m
        .run(mul, [`${p}:a`, `${p}:b`, `${p}:r`])
        .incr(`${p}:a`)
        .run(mul, [`${p}:a`, `${p}:b`, `${p}:r2`]),
    );
    expect(r).toEqual({
      status: 'committed',
      hasErrors: false,
      replies: [
        { ok: true, value: 42 },
        { ok: true, value: 7 },
        { ok: true, value: 49 },
      ],
    });
  });

  it('runs in a pipeline right after SCRIPT FLUSH', async () => {
    const p = prefix();
    const mul = tx.scripts.define('mul', { numberOfKeys: 3, lua: MUL });
    await other.mset(`${p}:a`, '2', `${p}:b`, '5');
    await tx.scripts.flush();
    const r = await tx.pipeline((b) =>
      b.run(mul, [`${p}:a`, `${p}:b`, `${p}:r`]).run(mul, [`${p}:b`, `${p}:b`, `${p}:r`]),
    );
    expect(r.replies.map((x) => (x.ok ? x.value : x.status))).toEqual([10, 25]);
  });

  it('a WATCH-aborted first use does not poison the connection for the next transaction', async () => {
    const p = prefix();
    const single = redisTx(client(), { poolSize: 1 });
    try {
      const mul = single.scripts.define('mul', { numberOfKeys: 3, lua: MUL });
      await other.mset(`${p}:a`, '4', `${p}:b`, '5');
      await single.scripts.flush();
      const first = await single.optimistic(
        [`${p}:a`],
        async (read) => {
          await read.get(`${p}:a`);
          await other.set(`${p}:a`, '3');
          return (m) => m.run(mul, [`${p}:a`, `${p}:b`, `${p}:r`]);
        },
        { retry: { maxAttempts: 1 } },
      );
      expect(first.status).toBe('conflict-exhausted');
      const second = await single.optimistic(
        [`${p}:a`],
        () => (m) => m.run(mul, [`${p}:a`, `${p}:b`, `${p}:r`]),
      );
      expect(second).toMatchObject({ status: 'committed', replies: [{ ok: true, value: 15 }] });
    } finally {
      await single.close();
    }
  });

  it('reproduces the server’s lossy Lua→RESP conversion, and the safe return shapes survive it', async () => {
    const raw = (lua: string) => other.eval(lua, 0);
    expect(await raw('return {success=true, new_stock=5}')).toEqual([]);
    expect(await raw('return 3.99')).toBe(3);
    expect(await raw("return {1, 2.7, 'x', true, false, nil, 5}")).toEqual([1, 2, 'x', 1, null]);
    await expect(raw('return os.time()')).rejects.toThrow(/os/);
    await expect(raw('x = 1 return x')).rejects.toThrow(/readonly table|global/);

    const shapes = tx.scripts.define('shapes', {
      numberOfKeys: 0,
      lua: 'return cjson.encode({ok=true, price=tostring(3.99), items={1, 2}})',
      decode: (v) => decodeJson<{ ok: boolean; price: string; items: number[] }>(v),
    });
    expect(await tx.scripts.run(shapes)).toEqual({ ok: true, price: '3.99', items: [1, 2] });
  });

  it('error_reply codes become ScriptError.driverCode; writes before a script error persist', async () => {
    const p = prefix();
    const mul = tx.scripts.define('mul', { numberOfKeys: 3, lua: MUL });
    await other.mset(`${p}:a`, 'x', `${p}:b`, '3');
    const err = await tx.scripts.run(mul, [`${p}:a`, `${p}:b`, `${p}:r`]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ScriptError);
    expect((err as ScriptError).driverCode).toBe('ERR_NOT_NUMBER');

    // Fault injection: a write, then a failing call. Redis keeps the write (no rollback).
    const partial = tx.scripts.define('partial-write', {
      numberOfKeys: 1,
      lua: "redis.call('SET', KEYS[1], '95') local t = os.time() return 1",
    });
    await expect(tx.scripts.run(partial, [`${p}:inv`])).rejects.toBeInstanceOf(ScriptError);
    expect(await other.get(`${p}:inv`)).toBe('95');
  });

  it('loads, reports info and runs in chunks with real keys', async () => {
    const p = prefix();
    const push = tx.scripts.define('push-all', {
      numberOfKeys: 1,
      lua: "for i = 1, #ARGV do redis.call('RPUSH', KEYS[1], ARGV[i]) end return #ARGV",
    });
    await tx.scripts.load(push);
    expect(await tx.scripts.exists(push)).toEqual([true]);
    expect(tx.scripts.info()['push-all']).toMatchObject({ sha: push.sha, content: push.lua });
    expect(tx.scripts.info()['push-all']!.loadedAt).toBeGreaterThan(0);
    const items = Array.from({ length: 250 }, (_, i) => String(i));
    expect(await tx.scripts.runChunked(push, [`${p}:list`], items)).toEqual([100, 100, 50]);
    expect(await other.llen(`${p}:list`)).toBe(250);
  });

  it('validates names, key counts and redefinitions', async () => {
    expect(() => defineScript('bad name', { lua: 'return 1' })).toThrow(
      /script name must start with a letter/,
    );
    expect(() => defineScript('ok', { lua: '  ' })).toThrow(InvalidArgumentError);
    expect(() => defineScript('ok', { lua: 'return 1', numberOfKeys: -1 })).toThrow(/numberOfKeys/);
    tx.scripts.define('one', { lua: 'return 1' });
    expect(() => tx.scripts.define('one', { lua: 'return 2' })).toThrow(/different body/);
    const mul = tx.scripts.define('mul', { numberOfKeys: 3, lua: MUL });
    await expect(tx.scripts.run(mul, ['a'])).rejects.toThrow(/takes 3 key\(s\) in KEYS, got 1/);
    expect(() => tx.multi().run(mul, ['a'])).toThrow(InvalidArgumentError);
    await expect(tx.scripts.run('nope')).rejects.toThrow(/no script named 'nope'/);
  });
});
