import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCommand, type QueuedCommand } from '../../src/redis/commands.js';
import { keyId, UNKNOWN_VALUE, WriteOverlay } from '../../src/redis/write-overlay.js';
import { client, closeClients, prefix, url } from './redis-test-env.js';

describe('write overlay: key ids', () => {
  it('a Buffer key and the same UTF-8 string are one key; different bytes never are', () => {
    expect(keyId(Buffer.from('käse'))).toBe(keyId('käse'));
    expect(keyId(7)).toBe(keyId('7'));
    expect(keyId(Buffer.from([0xff]))).not.toBe(keyId('\u00ff'));
    expect(keyId(Buffer.from([0xff]))).not.toBe(keyId('b\u00ff'));
    // A lone surrogate is sent as U+FFFD's bytes, like the string '\uFFFD'.
    expect(keyId('\uD800')).toBe(keyId('\uFFFD'));
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 8 }), fc.uint8Array({ maxLength: 8 }), (a, b) => {
        const same = Buffer.from(a).equals(Buffer.from(b));
        expect(keyId(Buffer.from(a)) === keyId(Buffer.from(b))).toBe(same);
      }),
    );
  });
});

describe.skipIf(!url)('write overlay predicts what the server holds after the same writes', () => {
  let redis: ReturnType<typeof client>;
  beforeAll(() => {
    redis = client();
  });
  afterAll(closeClients);

  const KEYS = ['a', 'b', 'c'];
  const key = fc.constantFrom(...KEYS);
  const int = fc.oneof(fc.integer({ min: -1000, max: 1000 }), fc.constant(2 ** 62));
  const write = fc.oneof(
    fc
      .tuple(
        key,
        fc.oneof(fc.string({ maxLength: 3 }), int.map(String), fc.constantFrom('-0', '007', '+5', ' 5')),
      )
      .map(([k, v]) => ['set', k, v]),
    fc
      .tuple(key, int, fc.constantFrom(100, 2 ** 62), fc.constantFrom('EX', 'PX'))
      .map(([k, v, ttl, unit]) => ['set', k, String(v), unit, ttl]), // 2^62 is refused at run time
    fc.tuple(key, fc.string({ maxLength: 2 })).map(([k, v]) => ['set', k, v, 'NX']),
    fc.tuple(key, fc.constantFrom(1, 4_000_000_000)).map(([k, at]) => ['set', k, 'x', 'EXAT', at]), // past or future
    fc.tuple(key, key).map(([k, l]) => ['del', k, l]),
    key.map((k) => ['incr', k]),
    key.map((k) => ['decr', k]),
    fc
      .tuple(key, fc.oneof(int, fc.constantFrom('9223372036854775808', '-9223372036854775808')))
      .map(([k, n]) => ['incrby', k, n]),
    fc.tuple(key, fc.oneof(int, fc.constantFrom('-9223372036854775808'))).map(([k, n]) => ['decrby', k, n]),
    fc.tuple(key, int).map(([k, v]) => ['set', k, String(v), 'EX', 10, 'PX', 100]), // a syntax error
    fc.tuple(key, int).map(([k, v]) => ['set', k, String(v), 'EX', 10, 'KEEPTTL']), // a syntax error
    fc.tuple(key, fc.string({ maxLength: 2 })).map(([k, v]) => ['append', k, v]),
  );

  it('every value the overlay claims to know is the value the server has', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.constantFrom(...KEYS), { maxLength: 3 }),
        fc.array(write, { minLength: 1, maxLength: 12 }),
        async (preset, writes) => {
          const p = prefix();
          const k = (name: string) => `${p}:${name}`;
          for (const name of preset) await redis.set(k(name), '10');
          const commands: QueuedCommand[] = writes.map(([name, kk, ...rest]) =>
            makeCommand(String(name), [k(String(kk)), ...(rest as Array<string | number>)]),
          );
          const overlay = new WriteOverlay();
          overlay.apply(commands);
          const pipeline = redis.multi();
          for (const c of commands) pipeline.call(c.name, ...c.args);
          await pipeline.exec(); // per-command errors (e.g. INCR on text) are part of the model
          for (const name of KEYS) {
            const predicted = overlay.lookup(k(name));
            if (predicted === undefined || predicted === UNKNOWN_VALUE) continue;
            expect(await redis.get(k(name))).toBe(predicted);
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it('knows the common increments exactly and gives up on what it cannot model', () => {
    const overlay = new WriteOverlay();
    expect(overlay.isEmpty).toBe(true);
    overlay.apply([
      makeCommand('set', ['n', 5]),
      makeCommand('incrby', ['n', 10]),
      makeCommand('decr', ['n']),
    ]);
    expect(overlay.lookup('n')).toBe('14');
    overlay.apply([makeCommand('del', ['n']), makeCommand('incr', ['n'])]);
    expect(overlay.lookup('n')).toBe('1');
    overlay.apply([makeCommand('set', ['n', 'text']), makeCommand('incr', ['n'])]);
    expect(overlay.lookup('n')).toBe(UNKNOWN_VALUE); // INCR fails on text: the server decides
    overlay.apply([makeCommand('incr', ['fresh'])]);
    expect(overlay.lookup('fresh')).toBe(UNKNOWN_VALUE); // its old value was never seen
    overlay.apply([makeCommand('set', ['c', 'v', 'XX'])]);
    expect(overlay.lookup('c')).toBe(UNKNOWN_VALUE);
    expect(overlay.lookup('untouched')).toBeUndefined();
    overlay.apply([makeCommand('set', ['big', 2 ** 62]), makeCommand('set', ['huge', 1e21])]);
    expect(overlay.lookup('big')).toBe('4611686018427387904'); // sent in full digits, as ioredis does
    expect(overlay.lookup('huge')).toBe('1000000000000000000000');
    overlay.apply([makeCommand('flushdb', [])]);
    expect(overlay.lookup('untouched')).toBe(UNKNOWN_VALUE); // keys cannot be derived: all unknown
  });
});
