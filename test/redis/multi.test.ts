import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, RawTransactionControlError } from '../../src/core/errors.js';
import {
  ExecAbortError,
  PartialTransactionError,
  RedisReplyError,
  type RedisTx,
  TransactionStateError,
} from '../../src/redis/index.js';
import { type client, prefix, url, useRedisTx } from './redis-test-env.js';

describe.skipIf(!url)('redis MULTI/EXEC', () => {
  let tx: RedisTx;
  let other: ReturnType<typeof client>;
  useRedisTx((t, o) => {
    tx = t;
    other = o;
  });

  it('commits every command, reports a run-time error in its slot, and applies the others', async () => {
    const p = prefix();
    await other.rpush(`${p}:list`, 'x');
    const result = await tx.multi((m) => m.set(`${p}:k`, 'v').incr(`${p}:list`).set(`${p}:k2`, 'v2'));
    expect(result.status).toBe('committed');
    if (result.status !== 'committed') return;
    expect(result.hasErrors).toBe(true);
    expect(result.replies[0]).toEqual({ ok: true, value: 'OK' });
    expect(result.replies[1]!.ok).toBe(false);
    const failed = result.replies[1] as { ok: false; error: RedisReplyError };
    expect(failed.error).toBeInstanceOf(RedisReplyError);
    expect(failed.error.driverCode).toBe('WRONGTYPE');
    expect(result.replies[2]).toEqual({ ok: true, value: 'OK' });
    // No rollback: both SETs are applied.
    expect(await other.mget(`${p}:k`, `${p}:k2`)).toEqual(['v', 'v2']);
    expect(tx.metrics.counter('redis_tx_partial_failures_total')).toBeGreaterThan(0);
  });

  it('INCRBY with a non-integer argument is a run-time error, not a queue-time one', async () => {
    const p = prefix();
    const result = await tx.multi((m) => m.set(`${p}:a`, '1').call('incrby', `${p}:a`, 'abc').incr(`${p}:a`));
    expect(result.status).toBe('committed');
    if (result.status !== 'committed') return;
    expect(result.replies.map((r) => r.ok)).toEqual([true, false, true]);
    expect(await other.get(`${p}:a`)).toBe('2');
  });

  it('execStrict throws PartialTransactionError saying the other commands were applied', async () => {
    const p = prefix();
    await other.sadd(`${p}:set`, 'm');
    const m = tx.multi();
    m.set(`${p}:x`, '1').append(`${p}:set`, 'y').incr(`${p}:set`);
    const err = await m.execStrict().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PartialTransactionError);
    expect((err as PartialTransactionError).message).toMatch(/were applied/);
    expect((err as PartialTransactionError).replies.filter((r) => !r.ok)).toHaveLength(2);
    expect(await other.get(`${p}:x`)).toBe('1');
    expect(m.state).toBe('committed');
  });

  it('a queue-time error aborts with EXECABORT, names the command index, and applies nothing', async () => {
    const p = prefix();
    await other.set(`${p}:A`, '1000');
    await other.set(`${p}:B`, '500');
    const m = tx.multi();
    m.decrby(`${p}:A`, 200)
      .incrby(`${p}:B`, 200)
      .call('nosuchcommand', 'x')
      .call('get')
      .lpush(`${p}:log`, 'moved');
    const err = await m.exec().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ExecAbortError);
    const abort = err as ExecAbortError;
    expect(abort.code).toBe('E_REDIS_EXECABORT');
    expect(abort.previousErrors.map((e) => [e.index, e.command])).toEqual([
      [2, 'nosuchcommand'],
      [3, 'get'],
    ]);
    expect(abort.previousErrors.every((e) => e.error.driverCode === 'ERR')).toBe(true);
    expect(m.state).toBe('aborted');
    expect(await other.mget(`${p}:A`, `${p}:B`, `${p}:log`)).toEqual(['1000', '500', null]);
  });

  it('missing keys are not errors: INCR gives 1 and HGET gives null', async () => {
    const p = prefix();
    const r = await tx.multi((m) => m.incr(`${p}:none`).hget(`${p}:nohash`, 'f'));
    expect(r).toEqual({
      status: 'committed',
      hasErrors: false,
      replies: [
        { ok: true, value: 1 },
        { ok: true, value: null },
      ],
    });
  });

  it('buffers client-side: nothing reaches the server before exec, and discard sends nothing', async () => {
    const p = prefix();
    await other.set(`${p}:k`, 'old');
    const m = tx.multi();
    m.set(`${p}:k`, 'new');
    expect(await other.get(`${p}:k`)).toBe('old');
    m.discard();
    expect(m.state).toBe('discarded');
    expect(() => m.set(`${p}:k`, 'again')).toThrow(TransactionStateError);
    await expect(m.exec()).rejects.toBeInstanceOf(TransactionStateError);
    expect(() => m.discard()).toThrow(TransactionStateError);
    expect(await other.get(`${p}:k`)).toBe('old');
  });

  it('refuses transaction control commands and bad arguments before sending', () => {
    const m = tx.multi();
    for (const name of ['multi', 'EXEC', 'watch', 'unwatch', 'discard', 'select']) {
      expect(() => m.call(name, 'x')).toThrow(RawTransactionControlError);
    }
    expect(() => m.call('set', 'k', undefined as never)).toThrow(
      /argument 1 must be a string, a Buffer or a finite number/,
    );
    expect(() => m.call('set', 'k', Number.NaN)).toThrow(InvalidArgumentError);
    expect(() => m.call('bad name!')).toThrow(/command name must be a word/);
    expect(m.length).toBe(0);
  });

  it('emits an exec event per transaction and counts outcomes in metrics', async () => {
    const p = prefix();
    const seen: Array<{ status: string; commands: number; failed: number }> = [];
    const off = tx.events.on('exec', (e) =>
      seen.push({ status: e.status, commands: e.commands, failed: e.failed }),
    );
    await other.rpush(`${p}:l`, 'x');
    await tx.multi((m) => m.set(`${p}:a`, '1').incr(`${p}:l`), { name: 'evt' });
    await tx.multi((m) => m.call('nosuchcommand'), { name: 'evt' }).catch(() => {});
    await expect(
      tx.multi((() => {
        throw new Error('builder bug');
      }) as never),
    ).rejects.toThrow('builder bug');
    off();
    expect(seen).toEqual([
      { status: 'committed', commands: 2, failed: 1 },
      { status: 'exec-abort', commands: 1, failed: 0 },
    ]);
    expect(tx.metrics.counter('redis_tx_total', { op: 'evt', status: 'committed' })).toBe(1);
    expect(tx.metrics.counter('redis_tx_total', { op: 'evt', status: 'exec-abort' })).toBe(1);
    expect(tx.metrics.snapshot().counters.redis_tx_exec_aborts_total).toBeGreaterThanOrEqual(1);
  });

  it('returns 1000 mixed replies in queue order', async () => {
    const p = prefix();
    const result = await tx.multi((m) => {
      for (let i = 0; i < 1000; i++) {
        if (i % 3 === 0) m.set(`${p}:${i}`, String(i));
        else if (i % 3 === 1) m.incrby(`${p}:n`, i);
        else m.get(`${p}:${i - 2}`);
      }
    });
    expect(result.status).toBe('committed');
    if (result.status !== 'committed') return;
    let sum = 0;
    result.replies.forEach((r, i) => {
      if (i % 3 === 0) expect(r).toEqual({ ok: true, value: 'OK' });
      else if (i % 3 === 1) {
        sum += i;
        expect(r).toEqual({ ok: true, value: sum });
      } else expect(r).toEqual({ ok: true, value: String(i - 2) });
    });
  });

  it('builder state machine: single use, states match the model (property)', async () => {
    const p = prefix();
    type Step = { kind: 'queue'; bad: boolean } | { kind: 'exec' } | { kind: 'discard' };
    const step = fc.oneof(
      fc.record({ kind: fc.constant('queue' as const), bad: fc.boolean() }),
      fc.constant({ kind: 'exec' as const }),
      fc.constant({ kind: 'discard' as const }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 8 }), async (steps: Step[]) => {
        const m = tx.multi();
        let model: 'building' | 'committed' | 'aborted' | 'discarded' = 'building';
        let hasBad = false;
        for (const s of steps) {
          if (s.kind === 'queue') {
            if (model !== 'building') {
              expect(() => m.incr(`${p}:c`)).toThrow(TransactionStateError);
            } else if (s.bad) {
              m.call('nosuchcommand');
              hasBad = true;
            } else m.incr(`${p}:c`);
          } else if (s.kind === 'exec') {
            if (model !== 'building') {
              await expect(m.exec()).rejects.toBeInstanceOf(TransactionStateError);
            } else if (hasBad) {
              await expect(m.exec()).rejects.toBeInstanceOf(ExecAbortError);
              model = 'aborted';
            } else {
              expect((await m.exec()).status).toBe('committed');
              model = 'committed';
            }
          } else if (model !== 'building') {
            expect(() => m.discard()).toThrow(TransactionStateError);
          } else {
            m.discard();
            model = 'discarded';
          }
          expect(m.state).toBe(model);
        }
      }),
      { numRuns: 40 },
    );
  });
});
