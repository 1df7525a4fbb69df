/**
 * Property: any sequence of inserts (some duplicates), savepoints, rollbacks to and
 * releases of savepoints, ended by COMMIT or ROLLBACK, leaves on the real server exactly
 * the rows a simple model predicts. Duplicate keys fail only their statement (the
 * transaction goes on); rolling back to a savepoint keeps it and drops later ones;
 * releasing one drops it and later ones.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UniqueViolationError } from '../../src/core/errors.js';
import type { Savepoint } from '../../src/core/transaction.js';
import { type MysqlDatabase, mysql } from '../../src/sql/mysql/index.js';
import { tableName, url } from './helpers.js';

type Op =
  | { kind: 'insert'; id: number }
  | { kind: 'savepoint' }
  | { kind: 'rollbackTo'; pick: number }
  | { kind: 'release'; pick: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant('insert' as const), id: fc.integer({ min: 1, max: 6 }) }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('savepoint' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('rollbackTo' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('release' as const), pick: fc.nat() }) },
);

describe.skipIf(!url)('savepoints against a model', () => {
  let db: MysqlDatabase;
  const t = tableName('spm');

  beforeAll(async () => {
    db = mysql({ uri: url, connectionLimit: 2 });
    await db.execute(`CREATE TABLE \`${t}\` (id INT PRIMARY KEY) ENGINE=InnoDB`);
  });
  afterAll(async () => {
    await db?.execute(`DROP TABLE IF EXISTS \`${t}\``);
    await db?.close();
  });

  it('the server ends with exactly the rows the model predicts', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 14 }), fc.boolean(), async (ops, commit) => {
        await db.execute(`DELETE FROM \`${t}\``);
        let model = new Set<number>();
        const stack: { sp: Savepoint; snapshot: Set<number> }[] = [];
        const run = db.transaction(async (tx) => {
          for (const o of ops) {
            if (o.kind === 'insert') {
              const r = await tx.execute(`INSERT INTO \`${t}\` (id) VALUES (?)`, [o.id]).then(
                () => null,
                (e) => e,
              );
              if (model.has(o.id)) expect(r).toBeInstanceOf(UniqueViolationError);
              else {
                expect(r).toBeNull();
                model.add(o.id);
              }
            } else if (o.kind === 'savepoint') {
              stack.push({ sp: await tx.savepoint(), snapshot: new Set(model) });
            } else if (stack.length > 0) {
              const i = o.pick % stack.length;
              const entry = stack[i] as (typeof stack)[number];
              if (o.kind === 'rollbackTo') {
                await entry.sp.rollback();
                model = new Set(entry.snapshot);
                stack.length = i + 1;
              } else {
                await entry.sp.release();
                stack.length = i;
              }
            }
          }
          if (!commit) throw new Error('roll back');
        });
        if (commit) await run;
        else await expect(run).rejects.toThrow('roll back');
        const rows = await db.query<{ id: number }>(`SELECT id FROM \`${t}\` ORDER BY id`);
        expect(rows.map((r) => r.id)).toEqual(commit ? [...model].sort((a, b) => a - b) : []);
      }),
      { numRuns: 40 },
    );
  });
});
