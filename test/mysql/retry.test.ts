import { describe, expect, it } from 'vitest';
import { TransactionAbortedError } from '../../src/core/errors.js';
import { resolveRetry, retryDelay } from '../../src/core/retry.js';
import { toTxkitError } from '../../src/sql/mysql/errors.js';
import { connectionRetry, deadlockRetry, generalRetry, lockTimeoutRetry } from '../../src/sql/mysql/retry.js';

const deadlock = toTxkitError({ errno: 1213, sqlState: '40001' });
const lockWait = toTxkitError({ errno: 1205, sqlState: 'HY000' });
const nowait = toTxkitError({ errno: 1205, sqlState: 'HY000' }, { nowait: true });
const snapshot = toTxkitError({ errno: 1020, sqlState: 'HY000' });
const dup = toTxkitError({ errno: 1062, sqlState: '23000' });
const lostBeforeCommit = toTxkitError({ code: 'ECONNRESET', fatal: true }, { phase: 'statement' });
const lostAtCommit = toTxkitError({ code: 'ECONNRESET', fatal: true }, { phase: 'commit' });
const refused = toTxkitError({ code: 'ECONNREFUSED', fatal: true }, { phase: 'connect' });

describe('retry presets', () => {
  it('are valid engine policies', () => {
    for (const p of [deadlockRetry, lockTimeoutRetry, connectionRetry, generalRetry])
      expect(resolveRetry(p)).toBeDefined();
  });

  it('deadlock preset: 4 attempts, first delay 100–200 ms like the seed', () => {
    const p = resolveRetry({ ...deadlockRetry, random: () => 0 })!;
    const q = resolveRetry({ ...deadlockRetry, random: () => 0.999999 })!;
    expect(p.maxAttempts).toBe(4);
    expect(retryDelay(p, 0)).toBeCloseTo(100, 0);
    expect(retryDelay(q, 0)).toBeCloseTo(200, 0);
    expect(retryDelay(p, 2)).toBeCloseTo(400, 0);
    expect(p.retryOn(deadlock, 1)).toBe(true);
    expect(p.retryOn(snapshot, 1)).toBe(true);
    // The engine refuses statements after a deadlock with an error whose cause is the deadlock.
    expect(p.retryOn(new TransactionAbortedError('aborted', { cause: deadlock }), 1)).toBe(true);
    for (const e of [lockWait, nowait, dup, lostBeforeCommit, new Error('business rule')])
      expect(p.retryOn(e, 1)).toBe(false);
  });

  it('lock timeout preset: one retry, 1205 yes, NOWAIT no', () => {
    const p = resolveRetry(lockTimeoutRetry)!;
    expect(p.maxAttempts).toBe(2);
    expect(p.retryOn(lockWait, 1)).toBe(true);
    expect(p.retryOn(nowait, 1)).toBe(false);
    expect(p.retryOn(deadlock, 1)).toBe(true);
  });

  it('connection preset: never retries a COMMIT whose outcome is unknown', () => {
    const p = resolveRetry({ ...connectionRetry, random: () => 0 })!;
    expect(p.maxAttempts).toBe(6);
    expect(retryDelay(p, 0)).toBeCloseTo(1000, 0);
    expect(retryDelay(resolveRetry({ ...connectionRetry, random: () => 0.999999 })!, 0)).toBeCloseTo(1500, 0);
    expect(p.retryOn(lostBeforeCommit, 1)).toBe(true);
    expect(p.retryOn(refused, 1)).toBe(true);
    expect(p.retryOn(lostAtCommit, 1)).toBe(false);
    expect(p.retryOn(deadlock, 1)).toBe(false);
  });

  it('general preset: seed RetryConfig(3, 1.0, 60.0, 2.0, ±10%)', () => {
    const p = resolveRetry({ ...generalRetry, random: () => 0.5 })!;
    expect([retryDelay(p, 0), retryDelay(p, 1), retryDelay(p, 2)]).toEqual([1000, 2000, 4000]);
    expect(retryDelay(resolveRetry({ ...generalRetry, random: () => 0 })!, 0)).toBeCloseTo(900, 5);
    expect(retryDelay(p, 20)).toBe(60_000);
    expect(p.retryOn(deadlock, 1) && p.retryOn(lostBeforeCommit, 1)).toBe(true);
    expect(p.retryOn(dup, 1)).toBe(false);
  });
});
