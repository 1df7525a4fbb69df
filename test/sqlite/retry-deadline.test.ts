import diagnostics from 'node:diagnostics_channel';
import { describe, expect, it } from 'vitest';
import {
  BusyError,
  CommitOutcomeUnknownError,
  DeadlockError,
  SerializationFailureError,
  TransactionTimeoutError,
  type TxEvents,
  UniqueViolationError,
} from '../../src/index.js';
import { openDb } from './helpers.js';

const busy = () => new BusyError('simulated contention', 'upgrade');

describe('retry', () => {
  it('is off by default', async () => {
    const db = openDb();
    let calls = 0;
    await expect(
      db.transaction(async () => {
        calls++;
        throw busy();
      }),
    ).rejects.toBeInstanceOf(BusyError);
    expect(calls).toBe(1);
  });

  it('re-runs the whole transaction on retryable errors, each attempt a fresh transaction', async () => {
    const db = openDb();
    await db.execute('CREATE TABLE t (v INTEGER)');
    const retries: TxEvents['retry'][] = [];
    db.on('retry', (e) => retries.push(e));
    const txIds = new Set<string>();
    let calls = 0;
    const v = await db.transaction(
      async (tx) => {
        txIds.add(tx.id);
        calls++;
        await tx.execute('INSERT INTO t VALUES (?)', [calls]);
        if (calls < 3)
          throw calls === 1 ? new DeadlockError('victim') : new SerializationFailureError('40001');
        return 'ok';
      },
      { retry: { baseDelayMs: 1, jitter: 'none' } },
    );
    expect(v).toBe('ok');
    expect(calls).toBe(3);
    expect(txIds.size).toBe(3);
    expect(retries.map((r) => [r.attempt, r.delayMs])).toEqual([
      [1, 1],
      [2, 2],
    ]);
    expect(await db.query('SELECT v FROM t')).toEqual([{ v: 3 }]); // failed attempts left nothing
    expect(db.metrics().retries).toBe(2);
  });

  it('never retries business errors or constraint violations', async () => {
    const db = openDb();
    let calls = 0;
    await expect(
      db.transaction(
        async () => {
          calls++;
          throw new UniqueViolationError('duplicate');
        },
        { retry: true },
      ),
    ).rejects.toBeInstanceOf(UniqueViolationError);
    await expect(
      db.transaction(
        async () => {
          calls++;
          throw new Error('余额不足');
        },
        { retry: true },
      ),
    ).rejects.toThrow('余额不足');
    expect(calls).toBe(2);
  });

  it('never retries an unknown commit outcome unless the work is marked idempotent', async () => {
    const db = openDb();
    const unknown = () => new CommitOutcomeUnknownError('connection lost after COMMIT was sent');
    let calls = 0;
    await expect(
      db.transaction(
        async () => {
          calls++;
          throw unknown();
        },
        { retry: { retryOn: () => true, baseDelayMs: 1 } },
      ),
    ).rejects.toMatchObject({ code: 'E_COMMIT_UNKNOWN' });
    expect(calls).toBe(1);
    await db.transaction(
      async () => {
        if (++calls < 3) throw unknown();
      },
      { retry: { retryOn: () => true, idempotent: true, baseDelayMs: 1 } },
    );
    expect(calls).toBe(3);
  });

  it('stops after maxAttempts and attaches the attempt count to the last error', async () => {
    const db = openDb();
    let calls = 0;
    const rolledBack: string[] = [];
    const err = await db
      .transaction(
        async (tx) => {
          calls++;
          tx.afterRollback(() => rolledBack.push(`attempt ${calls}`));
          throw busy();
        },
        { retry: { maxAttempts: 3, baseDelayMs: 1 } },
      )
      .catch((e: unknown) => e);
    expect(calls).toBe(3);
    expect((err as { attempts: number }).attempts).toBe(3);
    expect(rolledBack).toEqual(['attempt 3']); // afterRollback runs once, after the final rollback
  });

  it('retries only at the owner of the transaction: inner scopes rethrow, the outer re-runs the unit', async () => {
    const db = openDb();
    let outer = 0;
    let inner = 0;
    await db.transaction(
      async () => {
        outer++;
        await db
          .transaction(
            async () => {
              inner++;
              if (outer === 1) throw busy();
            },
            { retry: { maxAttempts: 10, baseDelayMs: 1 } },
          )
          .catch((e) => {
            throw e;
          });
        await db.transaction(
          async () => {
            if (outer === 2) throw busy();
          },
          { propagation: 'required', retry: { maxAttempts: 10, baseDelayMs: 1 } },
        );
      },
      { retry: { maxAttempts: 3, baseDelayMs: 1 } },
    );
    expect(outer).toBe(3);
    expect(inner).toBe(3);
  });

  it('uses an injected random source for jitter and validates the policy', async () => {
    const db = openDb();
    const delays: number[] = [];
    db.on('retry', (e) => delays.push(e.delayMs));
    let n = 0;
    await db.transaction(
      async () => {
        if (++n < 3) throw busy();
      },
      { retry: { baseDelayMs: 10, factor: 3, jitter: 'full', random: () => 0.5 } },
    );
    expect(delays).toEqual([5, 15]);
    for (const bad of [
      { maxAttempts: 0 },
      { factor: 0.5 },
      { jitter: 'some' },
      { baseDelayMs: -1 },
      { maxAtempts: 3 },
    ]) {
      await expect(db.transaction(async () => {}, { retry: bad as never })).rejects.toMatchObject({
        code: 'E_INVALID_OPTION',
      });
    }
  });
});

describe('deadlines and cancellation', () => {
  it('a deadline that fires mid-transaction rolls back and rejects with TransactionTimeoutError', async () => {
    const db = openDb();
    await db.execute('CREATE TABLE t (v INTEGER)');
    let lateError: unknown;
    let bodyDone!: () => void;
    const bodyFinished = new Promise<void>((r) => {
      bodyDone = r;
    });
    const started = performance.now();
    const err = await db
      .transaction(
        async (tx) => {
          await tx.execute('INSERT INTO t VALUES (1)');
          await new Promise((r) => setTimeout(r, 1_200)); // slow work inside the transaction
          await tx.execute('INSERT INTO t VALUES (2)').catch((e) => {
            lateError = e;
          });
          bodyDone();
        },
        { timeoutMs: 100 },
      )
      .catch((e: unknown) => e);
    const elapsed = performance.now() - started;
    expect(err).toBeInstanceOf(TransactionTimeoutError);
    expect(elapsed).toBeLessThan(1_000); // the deadline, not the slow work, ended it
    expect(await db.query('SELECT * FROM t')).toEqual([]);
    expect(db.metrics().rollbacksByReason).toEqual({ timeout: 1 });
    await bodyFinished;
    expect(lateError).toBeInstanceOf(TransactionTimeoutError); // the abandoned body cannot write
    expect(await db.query('SELECT * FROM t')).toEqual([]);
  });

  it('is never reported after a successful commit', async () => {
    const db = openDb();
    await db.execute('CREATE TABLE t (v INTEGER)');
    const rollbacks: unknown[] = [];
    db.on('rollback', (e) => rollbacks.push(e));
    let captured: any;
    await db.transaction(
      async (tx) => {
        captured = tx;
        await tx.execute('INSERT INTO t VALUES (1)');
      },
      { timeoutMs: 50 },
    );
    await new Promise((r) => setTimeout(r, 100));
    expect(captured.state).toBe('committed');
    expect(rollbacks).toEqual([]);
    expect(await db.query('SELECT v FROM t')).toEqual([{ v: 1 }]);
  });

  it('an AbortSignal rolls back a running transaction, and refuses to start with an aborted one', async () => {
    const db = openDb();
    await db.execute('CREATE TABLE t (v INTEGER)');
    const ac = new AbortController();
    const run = db.transaction(
      async (tx) => {
        await tx.execute('INSERT INTO t VALUES (1)');
        await new Promise((r) => setTimeout(r, 200));
      },
      { signal: ac.signal },
    );
    setTimeout(() => ac.abort(new Error('client went away')), 20);
    await expect(run).rejects.toMatchObject({ code: 'E_ABORTED' });
    expect(await db.query('SELECT * FROM t')).toEqual([]);
    await expect(db.transaction(async () => {}, { signal: ac.signal })).rejects.toMatchObject({
      code: 'E_ABORTED',
    });
  });

  it('an abort during the synchronous part of the body rolls back too', async () => {
    const db = openDb();
    await db.execute('CREATE TABLE t (v INTEGER)');
    const ac = new AbortController();
    await expect(
      db.transaction(
        (tx) => {
          void tx.execute('INSERT INTO t VALUES (1)');
          ac.abort();
          return 'done';
        },
        { signal: ac.signal },
      ),
    ).rejects.toMatchObject({ code: 'E_ABORTED' });
    expect(await db.query('SELECT * FROM t')).toEqual([]);
  });

  it('noRollbackOn keeps the work the way a success does: beforeCommit runs, rollback-only still rolls back', async () => {
    class BusinessWarning extends Error {}
    const db = openDb();
    await db.execute('CREATE TABLE t (v INTEGER)');
    const hooks: string[] = [];
    const keep = { noRollbackOn: (e: unknown) => e instanceof BusinessWarning };
    await expect(
      db.transaction(async (tx) => {
        await tx.execute('INSERT INTO t VALUES (1)');
        tx.beforeCommit(() => {
          hooks.push('before');
        });
        throw new BusinessWarning('kept');
      }, keep),
    ).rejects.toBeInstanceOf(BusinessWarning);
    await expect(
      db.transaction(async (tx) => {
        await tx.execute('INSERT INTO t VALUES (2)');
        tx.setRollbackOnly();
        throw new BusinessWarning('but rollback-only');
      }, keep),
    ).rejects.toBeInstanceOf(BusinessWarning);
    expect(hooks).toEqual(['before']);
    expect(await db.query('SELECT v FROM t')).toEqual([{ v: 1 }]);
  });

  it('a beforeCommit hook that throws a kept error runs once, and the work is committed', async () => {
    class BusinessWarning extends Error {}
    const db = openDb();
    await db.execute('CREATE TABLE t (v INTEGER)');
    let runs = 0;
    const err = await db
      .transaction(
        async (tx) => {
          await tx.execute('INSERT INTO t VALUES (1)');
          tx.beforeCommit(() => {
            runs++;
            throw new BusinessWarning('from the hook');
          });
        },
        { noRollbackOn: (e) => e instanceof BusinessWarning },
      )
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BusinessWarning);
    expect(runs).toBe(1);
    expect(await db.query('SELECT v FROM t')).toEqual([{ v: 1 }]);
  });

  it('rollbackOn / noRollbackOn follow Spring: listed errors commit the work, then rethrow', async () => {
    class BusinessWarning extends Error {}
    const db = openDb();
    await db.execute('CREATE TABLE t (v INTEGER)');
    await expect(
      db.transaction(
        async (tx) => {
          await tx.execute('INSERT INTO t VALUES (1)');
          throw new BusinessWarning('low balance');
        },
        { noRollbackOn: (e) => e instanceof BusinessWarning },
      ),
    ).rejects.toBeInstanceOf(BusinessWarning);
    await expect(
      db.transaction(
        async (tx) => {
          await tx.execute('INSERT INTO t VALUES (2)');
          throw new Error('only DB errors roll back here');
        },
        { rollbackOn: (e) => e instanceof BusyError },
      ),
    ).rejects.toThrow();
    await expect(
      db.transaction(
        async (tx) => {
          await tx.execute('INSERT INTO t VALUES (3)');
          throw busy();
        },
        { rollbackOn: (e) => e instanceof BusyError },
      ),
    ).rejects.toBeInstanceOf(BusyError);
    expect(await db.query('SELECT v FROM t ORDER BY v')).toEqual([{ v: 1 }, { v: 2 }]);
  });
});

describe('events and metrics', () => {
  it("a transaction's own slowThresholdMs overrides the database's", async () => {
    const db = openDb({ slowThresholdMs: 60_000 });
    const slow: number[] = [];
    db.on('slow', (e) => slow.push(e.thresholdMs));
    await db.transaction(
      async () => {
        await new Promise((r) => setTimeout(r, 20));
      },
      { slowThresholdMs: 5 },
    );
    await db.transaction(async () => {
      await new Promise((r) => setTimeout(r, 20));
    });
    expect(slow).toEqual([5]);
  });

  it('publishes on diagnostics_channel and counts outcomes, errors and slow transactions in bounded memory', async () => {
    // Far apart, so a loaded machine cannot make the empty transaction look slow.
    const db = openDb({ slowThresholdMs: 200 });
    const published: string[] = [];
    const onCommit = () => published.push('commit');
    const onSlow = () => published.push('slow');
    diagnostics.subscribe('txkit:commit', onCommit);
    diagnostics.subscribe('txkit:slow', onSlow);
    try {
      await db.transaction(async () => {});
      await db.transaction(async () => {
        await new Promise((r) => setTimeout(r, 250));
      });
      await db
        .transaction(async () => {
          throw busy();
        })
        .catch(() => {});
    } finally {
      diagnostics.unsubscribe('txkit:commit', onCommit);
      diagnostics.unsubscribe('txkit:slow', onSlow);
    }
    expect(published).toEqual(['commit', 'commit', 'slow']);
    const m = db.metrics();
    expect(m).toMatchObject({ started: 3, committed: 2, rolledBack: 1, busy: 1, active: 0 });
    expect(m.errorsByCode).toEqual({ E_BUSY: 1 });
    expect(m.slow).toHaveLength(1);
    expect(m.durationHistogram.at(-1)!.count).toBe(3);
    expect(m.successRate).toBeCloseTo(66.67, 1);
    db.resetMetrics();
    expect(db.metrics()).toMatchObject({ started: 0, committed: 0, slow: [] });
  });

  it('a throwing listener never changes the outcome; it is reported on the error event', async () => {
    const db = openDb();
    const reported: unknown[] = [];
    db.on('error', (e) => reported.push(e.source));
    db.on('commit', () => {
      throw new Error('observer bug');
    });
    expect(await db.transaction(async () => 'ok')).toBe('ok');
    expect(reported).toEqual(['listener:commit']);
  });
});
