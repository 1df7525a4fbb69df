import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { copyError } from '../../src/core/errors.js';
import { Metrics } from '../../src/core/metrics.js';
import { resolveOptions } from '../../src/core/options.js';
import { DEFAULT_RETRY, resolveRetry, retryDelay, withRetry } from '../../src/core/retry.js';
import { BusyError, isRetryable, UniqueViolationError } from '../../src/index.js';
import { quoteIdentifier, quoteQualifiedName } from '../../src/sql/shared/identifiers.js';
import { findTransactionControl } from '../../src/sql/shared/statement-guard.js';

describe('retry delays', () => {
  it('follow min(base * factor^n, max) with the seed defaults 100, 200, 400 ms', () => {
    const p = resolveRetry({ jitter: 'none' })!;
    expect([0, 1, 2].map((n) => retryDelay(p, n))).toEqual([100, 200, 400]);
    const example = resolveRetry({ maxAttempts: 6, baseDelayMs: 500, jitter: 'none' })!;
    expect([0, 1, 2, 3, 4, 5].map((n) => retryDelay(example, n))).toEqual([
      500, 1000, 2000, 4000, 8000, 10_000,
    ]);
  });

  it('stay within ±jitterRatio (proportional) or [0, delay] (full), never negative', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 0.999999, noNaN: true }),
        fc.integer({ min: 0, max: 20 }),
        (r, n) => {
          const prop = resolveRetry({ random: () => r })!;
          const nominal = Math.min(100 * 2 ** n, 10_000);
          const d = retryDelay(prop, n);
          expect(d).toBeGreaterThanOrEqual(nominal * 0.9 - 1e-9);
          expect(d).toBeLessThanOrEqual(nominal * 1.1 + 1e-9);
          const full = retryDelay(resolveRetry({ jitter: 'full', random: () => r })!, n);
          expect(full).toBeGreaterThanOrEqual(0);
          expect(full).toBeLessThanOrEqual(nominal);
        },
      ),
    );
  });

  it('withRetry runs maxAttempts times on retryable errors and attaches attempts', async () => {
    let calls = 0;
    const err = await withRetry(resolveRetry({ maxAttempts: 4, baseDelayMs: 0 }), async () => {
      calls++;
      throw new BusyError('x', 'upgrade');
    }).catch((e: unknown) => e);
    expect(calls).toBe(4);
    expect((err as { attempts: number }).attempts).toBe(4);
    expect(DEFAULT_RETRY.maxAttempts).toBe(4);
  });

  it('isRetryable is true only for errors marked retryable', () => {
    expect(isRetryable(new BusyError('x', 'timeout'))).toBe(true);
    expect(isRetryable(new UniqueViolationError('x'))).toBe(false);
    expect(isRetryable(new Error('x'))).toBe(false);
  });
});

describe('metrics', () => {
  it('keep a bounded slow ring with the slowest first', () => {
    const m = new Metrics(3);
    for (let i = 0; i < 10; i++) {
      m.started();
      m.finished('committed', i);
      m.slow({ txId: String(i), name: undefined, durationMs: i, outcome: 'committed', at: new Date() });
    }
    const s = m.snapshot();
    expect(s.slow.map((x) => x.durationMs)).toEqual([9, 8, 7]);
    expect(s.committed).toBe(10);
    expect(s.active).toBe(0);
  });
});

describe('transaction options', () => {
  it('reject bad values with a message that says what is allowed', () => {
    const keys = new Set(['beginMode']);
    expect(() => resolveOptions({ isolation: 'READ_COMMITTED' as never }, keys)).toThrow(
      /one of 'read uncommitted'/,
    );
    expect(() => resolveOptions({ propagation: 'REQUIRED' as never }, keys)).toThrow(/'requires_new'/);
    expect(() => resolveOptions({ timeoutMs: -5 }, keys)).toThrow(/timeoutMs must be/);
    expect(() => resolveOptions({ readOnly: 'yes' as never }, keys)).toThrow(/readOnly must be a boolean/);
    expect(() => resolveOptions({ isolaton: 'serializable' } as never, keys)).toThrow(
      /unknown transaction option 'isolaton'/,
    );
    expect(() => resolveOptions({ retry: 3 as never }, keys)).toThrow(/retry must be/);
    expect(resolveOptions({ beginMode: 'immediate' }, keys).extra).toEqual({ beginMode: 'immediate' });
  });
});

describe('statement guard', () => {
  it('finds transaction control in any statement, ignoring strings, comments and routine bodies', () => {
    const bad = [
      'COMMIT',
      '  /* hi */ begin',
      'start transaction read only',
      'ROLLBACK TO SAVEPOINT a',
      'SELECT 1; commit;',
      "SELECT 'a\\'; COMMIT; --'",
      "PREPARE TRANSACTION 'g'",
      "XA START 'x'",
      'SET TRANSACTION ISOLATION LEVEL SERIALIZABLE',
      'END',
      'ABORT',
    ];
    for (const sql of bad) expect(findTransactionControl(sql), sql).not.toBeNull();
    const good = [
      "SELECT 'COMMIT'",
      'SELECT 1 -- COMMIT',
      '/* BEGIN */ SELECT 1',
      'UPDATE t SET "commit" = 1',
      'CREATE TRIGGER x AFTER INSERT ON a BEGIN INSERT INTO b VALUES (1); END',
      'CREATE FUNCTION f() RETURNS int AS $$ BEGIN RETURN 1; END $$ LANGUAGE plpgsql',
      'PREPARE q AS SELECT 1',
      'SELECT CASE WHEN 1 THEN 2 END',
    ];
    for (const sql of good) expect(findTransactionControl(sql), sql).toBeNull();
  });

  it('quotes only valid identifiers', () => {
    expect(quoteIdentifier('accounts')).toBe('"accounts"');
    expect(quoteIdentifier('accounts', 'backtick')).toBe('`accounts`');
    expect(quoteQualifiedName('public.accounts')).toBe('"public"."accounts"');
    expect(() => quoteIdentifier('a"b')).toThrow(/letters, digits or underscores/);
    expect(() => quoteQualifiedName('a.b.c')).toThrow();
    // Each backend's own length limit: MySQL 64, PostgreSQL 63.
    expect(quoteIdentifier('x'.repeat(64), 'backtick')).toBe(`\`${'x'.repeat(64)}\``);
    expect(() => quoteIdentifier('x'.repeat(64))).toThrow(/1-63 letters/);
    expect(() => quoteIdentifier('x'.repeat(65), 'backtick')).toThrow(/1-64 letters/);
  });
});

describe('copyError', () => {
  it('gives each recipient its own object of the same class, message, code and cause', () => {
    const cause = new Error('socket closed');
    const original = new UniqueViolationError('duplicate key', { cause });
    const copy = copyError(original);
    expect(copy).not.toBe(original);
    expect(copy).toBeInstanceOf(UniqueViolationError);
    expect([copy.message, copy.code, copy.cause, copy.stack]).toEqual([
      original.message,
      original.code,
      cause,
      original.stack,
    ]);
    (copy as { attempts?: number }).attempts = 3;
    expect((original as { attempts?: number }).attempts).toBeUndefined();
    expect(copyError('not an error')).toBe('not an error');
  });
});
