import { describe, expect, it } from 'vitest';
import {
  ConcurrentNestedTransactionError,
  currentTransaction,
  InvalidIdentifierError,
  NestingDepthExceededError,
  SavepointInvalidError,
  type Transaction,
} from '../../src/index.js';
import type { SqliteDatabase } from '../../src/sql/sqlite/index.js';
import { openDb } from './helpers.js';

async function itemsTable(db: SqliteDatabase) {
  await db.execute('CREATE TABLE items (name TEXT PRIMARY KEY)');
  return async () =>
    (await db.query<{ name: string }>('SELECT name FROM items ORDER BY name')).map((r) => r.name);
}

describe('nested transactions (savepoint scopes)', () => {
  it('a nested call is a savepoint: its failure rolls back only its own work when the caller catches', async () => {
    const db = openDb();
    const names = await itemsTable(db);
    await db.transaction(async () => {
      await db.execute("INSERT INTO items VALUES ('level1')");
      await db.transaction(async (l2) => {
        expect(l2.depth).toBe(2);
        await db.execute("INSERT INTO items VALUES ('level2')");
        await db
          .transaction(async (l3) => {
            expect(l3.depth).toBe(3);
            await db.execute("INSERT INTO items VALUES ('level3')");
            throw new Error('level 3 fails');
          })
          .catch(() => {});
      });
    });
    expect(await names()).toEqual(['level1', 'level2']);
  });

  it('an error caught INSIDE the nested callback does not roll it back (by design)', async () => {
    const db = openDb();
    const names = await itemsTable(db);
    await db.transaction(async () => {
      await db.transaction(async (tx) => {
        await tx.execute("INSERT INTO items VALUES ('kept')");
        try {
          throw new Error('swallowed');
        } catch {
          // the scope never sees the error, so it releases its savepoint
        }
      });
    });
    expect(await names()).toEqual(['kept']);
  });

  it('limits nesting depth before issuing SAVEPOINT', async () => {
    const db = openDb();
    const savepoints: string[] = [];
    db.on('savepoint', (e) => savepoints.push(`${e.action}:${e.savepoint}`));
    const err = await db
      .transaction(() => db.transaction(() => db.transaction(() => db.transaction(async () => 'too deep'))))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NestingDepthExceededError);
    expect(savepoints).toEqual(['create:sp_1', 'create:sp_2', 'rollback:sp_2', 'rollback:sp_1']);
    const deeper = openDb({ maxNestingDepth: 4 });
    expect(
      await deeper.transaction(() =>
        deeper.transaction(() => deeper.transaction(() => deeper.transaction(async (t) => t.depth))),
      ),
    ).toBe(4);
  });

  it('rejects concurrent nested scopes on one transaction with a clear error', async () => {
    const db = openDb();
    const names = await itemsTable(db);
    const err = await db
      .transaction(async () => {
        await Promise.all([
          db.transaction(async () => {
            await db.execute("INSERT INTO items VALUES ('a')");
          }),
          db.transaction(async () => {
            await db.execute("INSERT INTO items VALUES ('b')");
          }),
        ]);
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConcurrentNestedTransactionError);
    expect(await names()).toEqual([]);
  });

  it('lets code inside a nested scope use the captured outer tx, but refuses a sibling flow', async () => {
    const db = openDb();
    const names = await itemsTable(db);
    await db.transaction(async (outer) => {
      let entered!: () => void;
      const inside = new Promise<void>((r) => {
        entered = r;
      });
      const nested = db
        .transaction(async () => {
          await outer.execute("INSERT INTO items VALUES ('captured-outer')"); // runs in the savepoint
          entered();
          await new Promise((r) => setTimeout(r, 10));
          throw new Error('undo the nested scope');
        })
        .catch(() => {});
      await inside;
      await expect(outer.execute("INSERT INTO items VALUES ('sibling')")).rejects.toBeInstanceOf(
        ConcurrentNestedTransactionError,
      );
      await nested;
      await outer.execute("INSERT INTO items VALUES ('after')");
    });
    expect(await names()).toEqual(['after']);
  });

  it('runs the seed order flow with savepoints, including the failing-discount and empty-order variants', async () => {
    const db = openDb();
    await db.execute(
      'CREATE TABLE inventory (product TEXT PRIMARY KEY, stock INTEGER NOT NULL CHECK (stock >= 0))',
    );
    await db.execute(
      'CREATE TABLE orders (id INTEGER PRIMARY KEY, total_cents INTEGER NOT NULL, status TEXT NOT NULL)',
    );
    const reset = async () => {
      await db.execute('DELETE FROM orders');
      await db.execute('DELETE FROM inventory');
      await db.execute(
        "INSERT INTO inventory VALUES ('笔记本电脑', 10), ('无线鼠标', 20), ('机械键盘', 15), ('显示器', 8)",
      );
    };
    const items = [
      { product: '笔记本电脑', qty: 1, priceCents: 599_900 },
      { product: '无线鼠标', qty: 2, priceCents: 19_900 },
      { product: '机械键盘', qty: 1, priceCents: 59_900 },
    ];
    const placeOrder = (list: typeof items, failDiscount: boolean) =>
      db.transaction(async (tx) => {
        const order = await tx.execute("INSERT INTO orders (total_cents, status) VALUES (0, 'pending')", []);
        const created = await tx.savepoint('save_order_created');
        if (list.length === 0) {
          await created.rollback();
          throw new Error('订单必须包含至少一个商品');
        }
        let subtotal = 0;
        for (const it of list) {
          const r = await tx.execute(
            'UPDATE inventory SET stock = stock - ? WHERE product = ? AND stock >= ?',
            [it.qty, it.product, it.qty],
          );
          if (r.rowsAffected !== 1) throw new Error(`insufficient stock for ${it.product}`);
          subtotal += it.qty * it.priceCents;
        }
        await tx.execute('UPDATE orders SET total_cents = ? WHERE id = ?', [subtotal, order.lastInsertId]);
        const updated = await tx.savepoint('save_inventory_updated');
        try {
          if (failDiscount) throw new Error('discount service failed');
          if (subtotal > 500_000) {
            await tx.execute('UPDATE orders SET total_cents = total_cents * 9 / 10 WHERE id = ?', [
              order.lastInsertId,
            ]);
          }
        } catch {
          await updated.rollback();
        }
        await tx.execute("UPDATE orders SET status = 'confirmed' WHERE id = ?", [order.lastInsertId]);
      });
    const stock = async () =>
      (await db.query<{ stock: number }>('SELECT stock FROM inventory ORDER BY rowid')).map((r) => r.stock);

    await reset();
    await placeOrder(items, false);
    expect(await db.query('SELECT total_cents, status FROM orders')).toEqual([
      { total_cents: 629_640, status: 'confirmed' },
    ]);
    expect(await stock()).toEqual([9, 18, 14, 8]);

    await reset();
    await placeOrder(items, true);
    expect(await db.query('SELECT total_cents, status FROM orders')).toEqual([
      { total_cents: 699_600, status: 'confirmed' },
    ]);

    await reset();
    await expect(placeOrder([], false)).rejects.toThrow('订单必须包含至少一个商品');
    expect(await db.query('SELECT * FROM orders')).toEqual([]);
    expect(await stock()).toEqual([10, 20, 15, 8]);
  });
});

describe('manual savepoints mirror the server', () => {
  it('ROLLBACK TO keeps the savepoint; RELEASE releases it and every later one', async () => {
    const db = openDb();
    const names = await itemsTable(db);
    await db.transaction(async (tx) => {
      const a = await tx.savepoint('a');
      await tx.execute("INSERT INTO items VALUES ('x')");
      const b = await tx.savepoint('b');
      await tx.execute("INSERT INTO items VALUES ('y')");
      await b.rollback();
      await b.rollback(); // still usable after ROLLBACK TO
      await tx.execute("INSERT INTO items VALUES ('z')");
      await a.release(); // releases b too
      await expect(b.rollback()).rejects.toBeInstanceOf(SavepointInvalidError);
      await expect(b.release()).rejects.toBeInstanceOf(SavepointInvalidError);
      const c = await tx.savepoint();
      expect(c.name).toMatch(/^sp_\d+$/);
      const d = await tx.savepoint();
      await c.rollback(); // destroys d, keeps c
      await expect(d.release()).rejects.toMatchObject({ code: 'E_SAVEPOINT_INVALID' });
      await c.release();
    });
    expect(await names()).toEqual(['x', 'z']);
  });

  it('validates savepoint names and rejects duplicates', async () => {
    const db = openDb();
    await db.transaction(async (tx) => {
      for (const bad of ['a b', 'x"; DROP TABLE items; --', '1abc', '', 'a'.repeat(64), 'sp-1']) {
        await expect(tx.savepoint(bad)).rejects.toBeInstanceOf(InvalidIdentifierError);
      }
      await expect(tx.savepoint('x"; DROP')).rejects.toThrow(/letters, digits or underscores/);
      await tx.savepoint('ok_name');
      await expect(tx.savepoint('ok_name')).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
    });
  });
});

describe('hooks', () => {
  it('afterCommit runs once after the outermost commit, in order; beforeCommit runs inside the transaction', async () => {
    const db = openDb();
    const names = await itemsTable(db);
    const seen: string[] = [];
    await db.transaction(async (tx) => {
      tx.afterCommit(() => seen.push('after-1'));
      tx.beforeCommit(async () => {
        seen.push('before');
        await db.execute("INSERT INTO items VALUES ('from-before-commit')");
      });
      await db.transaction(async (inner) => {
        inner.afterCommit(() => seen.push('after-2-nested-released'));
      });
      expect(seen).toEqual([]);
    });
    expect(seen).toEqual(['before', 'after-1', 'after-2-nested-released']);
    expect(await names()).toEqual(['from-before-commit']);
  });

  it('drops afterCommit hooks registered in a savepoint scope that rolled back, and runs its afterRollback', async () => {
    const db = openDb();
    const seen: string[] = [];
    await db.transaction(async (tx) => {
      tx.afterCommit(() => seen.push('outer-commit'));
      await db
        .transaction(async (inner) => {
          inner.afterCommit(() => seen.push('inner-commit'));
          inner.afterRollback(() => seen.push('inner-rollback'));
          throw new Error('inner fails');
        })
        .catch(() => {});
      expect(seen).toEqual(['inner-rollback']);
      const sp = await tx.savepoint();
      tx.afterCommit(() => seen.push('after-manual-savepoint'));
      await sp.rollback();
    });
    expect(seen).toEqual(['inner-rollback', 'outer-commit']);
  });

  it('a failing beforeCommit rolls back; a failing afterCommit never changes the committed outcome', async () => {
    const db = openDb();
    const names = await itemsTable(db);
    await expect(
      db.transaction(async (tx) => {
        await tx.execute("INSERT INTO items VALUES ('a')");
        tx.beforeCommit(() => {
          throw new Error('validation failed');
        });
      }),
    ).rejects.toThrow('validation failed');
    expect(await names()).toEqual([]);

    const hookErrors: unknown[] = [];
    db.on('hook-error', (e) => hookErrors.push(e.error));
    const ran: string[] = [];
    const v = await db.transaction(async (tx) => {
      await tx.execute("INSERT INTO items VALUES ('b')");
      tx.afterCommit(() => {
        throw new Error('mail server down');
      });
      tx.afterCommit(() => ran.push('second hook still runs'));
      return 42;
    });
    expect(v).toBe(42);
    expect(await names()).toEqual(['b']);
    expect(hookErrors).toHaveLength(1);
    expect(ran).toEqual(['second hook still runs']);
  });

  it('afterRollback runs after the final rollback; setRollbackOnly rolls back without an error', async () => {
    const db = openDb();
    const names = await itemsTable(db);
    const seen: string[] = [];
    const reasons: string[] = [];
    db.on('rollback', (e) => reasons.push(e.reason));
    const value = await db.transaction(async (tx) => {
      await tx.execute("INSERT INTO items VALUES ('dry-run')");
      tx.afterRollback(() => seen.push('rolled back'));
      tx.afterCommit(() => seen.push('never'));
      tx.setRollbackOnly();
      expect(tx.rollbackOnly).toBe(true);
      return 'preview';
    });
    expect(value).toBe('preview');
    expect(seen).toEqual(['rolled back']);
    expect(reasons).toEqual(['rollback-only']);
    expect(await names()).toEqual([]);
  });
});

describe('ambient transaction', () => {
  it('is keyed per Database instance and visible through currentTransaction()', async () => {
    const db1 = openDb();
    const db2 = openDb();
    await db1.transaction(async (t1) => {
      expect(currentTransaction(db1)).toBe(t1);
      expect(currentTransaction(db2)).toBeUndefined();
      expect(currentTransaction()).toBe(t1);
      await db2.transaction(async (t2) => {
        expect(currentTransaction(db2)).toBe(t2);
        expect(currentTransaction(db1)).toBe(t1);
        expect(currentTransaction()).toBe(t2);
        await new Promise((r) => setTimeout(r, 1));
        expect(currentTransaction(db1)).toBe(t1);
      });
    });
    expect(currentTransaction(db1)).toBeUndefined();
  });

  it('reports the scope stack for debugging', async () => {
    const db = openDb();
    let scopes: ReturnType<Transaction['scopes']> = [];
    await db.transaction(() =>
      db.transaction(async (inner) => {
        scopes = inner.scopes();
      }),
    );
    expect(scopes.map((s) => [s.depth, s.savepoint])).toEqual([
      [1, undefined],
      [2, 'sp_1'],
    ]);
  });
});
