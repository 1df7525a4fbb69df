import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { currentTransaction, Transactional, transactional } from '../../src/index.js';
import { openDb } from './helpers.js';

const ROOT = join(import.meta.dirname, '../..');

describe('transactional() and @Transactional()', () => {
  it('transactional passes the transaction as the first argument and commits or rolls back', async () => {
    const db = openDb();
    await db.execute('CREATE TABLE t (v INTEGER NOT NULL CHECK (v > 0))');
    const insert = transactional(db, async (tx, a: number, b: number) => {
      await tx.execute('INSERT INTO t VALUES (?)', [a]);
      await tx.execute('INSERT INTO t VALUES (?)', [b]);
      return a + b;
    });
    expect(await insert(1, 2)).toBe(3);
    await expect(insert(3, -1)).rejects.toMatchObject({ code: 'E_CHECK' });
    expect(await db.query('SELECT v FROM t ORDER BY v')).toEqual([{ v: 1 }, { v: 2 }]);
  });

  it('the decorator wraps a method in the same runner, naming the transaction after the method', async () => {
    const db = openDb();
    const names: (string | undefined)[] = [];
    db.on('begin', (e) => names.push(e.name));
    const method = async function (this: { tag: string }, n: number) {
      return `${this.tag}:${n}:${currentTransaction(db)!.depth}`;
    };
    const decorated = Transactional<{ tag: string }, [number], string>(db)(method, {
      name: 'work',
    } as ClassMethodDecoratorContext<{ tag: string }, typeof method>);
    expect(await decorated.call({ tag: 'x' }, 7)).toBe('x:7:1');
    expect(names).toEqual(['work']);
  });

  it('runs with real decorator syntax: stacked methods share one physical transaction', async () => {
    // Vitest's transformer (Oxc) cannot lower TC39 decorators yet; tsx (esbuild) can, so the
    // example runs in a child process exactly as a user would run it.
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', 'examples/sqlite-decorators.ts'],
      {
        cwd: ROOT,
      },
    );
    expect(stdout).toContain('transaction name: payday');
    expect(stdout).toContain('second payday rolled back: account 1 cannot pay 100');
    expect(stdout).toContain('balances: 50,100,100');
    expect(stdout).toContain('physical transactions: 2');
  });
});
