/**
 * Server-side cursors: batches, early exit, and use after the transaction ends.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidOptionError, TransactionClosedError } from '../../src/core/errors.js';
import { type PostgresDatabase, postgres } from '../../src/sql/postgres/index.js';
import {
  createTestDatabase,
  type Instrumented,
  instrumentedPool,
  PG_URL,
  rejection,
  type TestDatabase,
} from './helpers.js';

describe.skipIf(!PG_URL)('tx.cursor (real server)', () => {
  let tdb: TestDatabase;
  let inst: Instrumented;
  let db: PostgresDatabase;
  beforeAll(async () => {
    tdb = await createTestDatabase('cursor');
    inst = instrumentedPool(tdb.url, 2);
    db = postgres({ pool: inst.pool, endPoolOnClose: true });
    await db.execute('CREATE TABLE big AS SELECT g AS id FROM generate_series(1, 10000) g');
  });
  afterAll(async () => {
    await db?.close();
    await tdb?.drop();
  });

  it('reads 10 000 rows in batches of 100 with bound parameters', async () => {
    inst.log.length = 0;
    let n = 0;
    let sum = 0;
    await db.transaction(async (tx) => {
      for await (const row of tx.cursor<{ id: number }>(
        'SELECT id FROM big WHERE id >= $1 ORDER BY id',
        [1],
        {
          batchSize: 100,
        },
      )) {
        n++;
        sum += row.id;
      }
    });
    expect(n).toBe(10_000);
    expect(sum).toBe(50_005_000);
    const fetches = inst.log.filter((s) => s.startsWith('FETCH FORWARD 100'));
    expect(fetches.length).toBe(101); // 100 full batches, then an empty one that says "done"
  });

  it('break closes the cursor; the transaction goes on; using it after the end fails', async () => {
    let leftover: AsyncGenerator<{ id: number }> | undefined;
    await db.transaction(async (tx) => {
      for await (const row of tx.cursor<{ id: number }>('SELECT id FROM big ORDER BY id', undefined, {
        batchSize: 10,
      })) {
        if (row.id === 25) break;
      }
      expect(inst.log.at(-1)).toMatch(/^CLOSE "txkit_cursor_\d+"$/);
      const [r] = await tx.query<{ n: number }>('SELECT count(*)::int AS n FROM big');
      expect(r!.n).toBe(10_000);
      leftover = tx.cursor<{ id: number }>('SELECT id FROM big');
    });
    expect(await rejection(leftover!.next())).toBeInstanceOf(TransactionClosedError);
    await db.transaction(async (tx) => {
      expect(await rejection(tx.cursor('SELECT 1', undefined, { batchSize: 0 }).next())).toBeInstanceOf(
        InvalidOptionError,
      );
    });
  });
});
