/**
 * The callback statement SPI (`ResourceTx.queryCb` / `executeCb`): the engine completes the
 * statement's own promise from the resource's callback, with the same guarantees as the
 * promise forms.
 */
import { describe, expect, it } from 'vitest';
import { Database } from '../../src/core/database.js';
import { TransactionRolledBackError, TxkitError } from '../../src/core/errors.js';
import type {
  Capabilities,
  ExecuteResult,
  Params,
  Resource,
  ResourceTx,
  StatementCallback,
} from '../../src/core/resource.js';

const level = { effective: 'read committed', prevents: [] } as const;
const capabilities: Capabilities = {
  isolation: {
    'read uncommitted': level,
    'read committed': level,
    'repeatable read': level,
    serializable: level,
  },
  defaultIsolation: 'read committed',
  savepoints: false,
  readOnly: true,
  deferrable: false,
  twoPhase: false,
  concurrentTransactions: true,
  statementErrorAbortsTransaction: false,
};

class Refused extends TxkitError {
  constructor(sql: string) {
    super('E_CHECK', `refused: ${sql}`);
  }
}

/** Applies `SET n` statements on commit; `FAIL` fails on the next tick; `THROW` throws at once. */
class CallbackTx implements ResourceTx {
  readonly isolation = 'read committed' as const;
  readonly readOnly = false;
  readonly pending: string[] = [];
  constructor(private readonly store: { committed: string[]; commits: number }) {}

  executeCb(sql: string, _params: Params | undefined, done: StatementCallback<ExecuteResult>): void {
    if (sql === 'THROW') throw new Refused(sql);
    setImmediate(() => {
      if (sql === 'FAIL') return done(new Refused(sql));
      this.pending.push(sql);
      done(null, { rowsAffected: 1 });
      if (sql === 'TWICE') done(null, { rowsAffected: 2 }); // a buggy resource
    });
  }
  queryCb<T>(sql: string, _params: Params | undefined, done: StatementCallback<T[]>): void {
    setImmediate(() => done(null, [{ sql }] as T[]));
  }
  query<T>(): Promise<T[]> {
    return Promise.reject(new Error('the engine must use queryCb'));
  }
  execute(): Promise<ExecuteResult> {
    return Promise.reject(new Error('the engine must use executeCb'));
  }
  savepoint(): Promise<void> {
    return Promise.reject(new Error('no savepoints'));
  }
  rollbackTo(): Promise<void> {
    return this.savepoint();
  }
  release(): Promise<void> {
    return this.savepoint();
  }
  commit(): Promise<void> {
    this.store.committed.push(...this.pending);
    this.store.commits++;
    return Promise.resolve();
  }
  rollback(): Promise<void> {
    return Promise.resolve();
  }
  usableAfterError(): boolean {
    return true; // like MySQL or SQLite: a failed statement leaves the transaction usable
  }
}

function database(statementErrorAbortsTransaction = false) {
  const store = { committed: [] as string[], commits: 0 };
  const resource: Resource = {
    kind: 'callback',
    capabilities: { ...capabilities, statementErrorAbortsTransaction },
    begin: () => Promise.resolve(new CallbackTx(store)),
    query: () => Promise.reject(new Error('autocommit not used')),
    execute: () => Promise.reject(new Error('autocommit not used')),
    classify: (err) => (err instanceof TxkitError ? err : new TxkitError('E_DATABASE', String(err))),
    close: () => Promise.resolve(),
  };
  return { db: new Database(resource), store };
}

describe('callback statements (ResourceTx.executeCb / queryCb)', () => {
  it('resolve with the value the resource calls back with', async () => {
    const { db, store } = database();
    const rows = await db.transaction(async (tx) => {
      expect(await tx.execute('SET 1')).toEqual({ rowsAffected: 1 });
      return tx.query<{ sql: string }>('SELECT');
    });
    expect(rows).toEqual([{ sql: 'SELECT' }]);
    expect(store.committed).toEqual(['SET 1']);
  });

  it('a failure nobody awaited fails the commit, whether called back or thrown synchronously', async () => {
    for (const failing of ['FAIL', 'THROW']) {
      const { db, store } = database();
      const outcome = await db
        .transaction(async (tx) => {
          await tx.execute('SET 1');
          void tx.execute(failing);
        })
        .then(
          () => 'committed',
          (err: unknown) => err,
        );
      expect(outcome).toBeInstanceOf(Refused);
      expect(store.commits).toBe(0);
    }
  });

  it('a failure the callback awaited and handled does not stop the commit', async () => {
    const { db, store } = database();
    await db.transaction(async (tx) => {
      await expect(tx.execute('FAIL')).rejects.toBeInstanceOf(Refused);
      await expect(tx.execute('THROW')).rejects.toBeInstanceOf(Refused);
      await tx.execute('SET 2');
    });
    expect(store.committed).toEqual(['SET 2']);
  });

  it('commit waits for a statement still in flight; a second callback changes nothing', async () => {
    const { db, store } = database();
    await db.transaction(async (tx) => {
      void tx.execute('SET 3');
      expect(await tx.execute('TWICE')).toEqual({ rowsAffected: 1 });
      await new Promise((r) => setImmediate(r)); // the second callback has come and gone
      void tx.execute('SET 5'); // the in-flight count is balanced: commit still waits for this one
    });
    expect(store.committed).toEqual(['SET 3', 'TWICE', 'SET 5']);
  });

  describe('on a resource where a failed statement aborts the transaction (PostgreSQL)', () => {
    it('a failure, awaited or not, leaves nothing to commit', async () => {
      for (const awaited of [true, false]) {
        const { db, store } = database(true);
        const outcome = await db
          .transaction(async (tx) => {
            await tx.execute('SET 1');
            const failing = tx.execute('FAIL');
            if (awaited) await failing.catch(() => {});
          })
          .then(
            () => 'committed',
            (err: unknown) => err,
          );
        expect(outcome).toBeInstanceOf(TransactionRolledBackError);
        expect((outcome as Error).cause).toBeInstanceOf(Refused);
        expect(store.commits).toBe(0);
      }
    });

    it('a statement refused before it was sent does not abort; unawaited, it still stops the commit', async () => {
      const { db, store } = database(true);
      await db.transaction(async (tx) => {
        await expect(tx.execute('THROW')).rejects.toBeInstanceOf(Refused);
        await tx.execute('SET 2');
      });
      expect(store.committed).toEqual(['SET 2']);
      const outcome = await db
        .transaction(async (tx) => {
          void tx.execute('THROW');
          await tx.execute('SET 3');
        })
        .then(
          () => 'committed',
          (err: unknown) => err,
        );
      expect(outcome).toBeInstanceOf(Refused);
      expect(store.commits).toBe(1);
    });
  });
});
