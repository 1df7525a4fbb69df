import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { currentTransaction, PROPAGATIONS, type Propagation, TxkitError } from '../../src/index.js';
import type { SqliteDatabase } from '../../src/sql/sqlite/index.js';
import { openDb } from './helpers.js';

async function markers(db: SqliteDatabase): Promise<string[]> {
  return (await db.query<{ m: string }>('SELECT m FROM marks ORDER BY m')).map((r) => r.m);
}

async function setup(options = {}) {
  const db = openDb(options);
  await db.execute('CREATE TABLE marks (m TEXT PRIMARY KEY)');
  return db;
}

describe('propagation, one behaviour each', () => {
  it("'required' joins the open transaction: one physical transaction", async () => {
    const db = await setup();
    let begins = 0;
    db.on('begin', () => begins++);
    await db.transaction(async (outer) => {
      await db.transaction(
        async (inner) => {
          expect(inner).toBe(outer);
        },
        { propagation: 'required' },
      );
    });
    expect(begins).toBe(1);
  });

  it("a failing 'required' scope marks the transaction rollback-only, even if the caller catches", async () => {
    const db = await setup();
    const err = await db
      .transaction(async () => {
        await db.execute("INSERT INTO marks VALUES ('outer')");
        await db
          .transaction(
            async () => {
              throw new Error('inner');
            },
            { propagation: 'required' },
          )
          .catch(() => {});
        await expect(db.execute("INSERT INTO marks VALUES ('after')")).rejects.toMatchObject({
          code: 'E_TX_ROLLBACK_ONLY',
        });
      })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'E_TX_ROLLED_BACK' });
    expect(await markers(db)).toEqual([]);
  });

  it("'requires_new' on SQLite refuses to wait on the write lock of its own suspended transaction", async () => {
    const db = await setup();
    const err = await db
      .transaction(() => db.transaction(async () => {}, { propagation: 'requires_new' }))
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'E_SELF_DEADLOCK' });
    expect((err as Error).message).toMatch(/single write lock/);
  });

  it("'requires_new' inside a read-only transaction commits independently on a second connection", async () => {
    const db = await setup();
    await db.transaction(
      async (outer) => {
        await db.transaction(
          async (inner) => {
            expect(inner).not.toBe(outer);
            expect(currentTransaction(db)).toBe(inner);
            await db.execute("INSERT INTO marks VALUES ('audit')");
          },
          { propagation: 'requires_new' },
        );
        expect(currentTransaction(db)).toBe(outer); // resumed
      },
      { readOnly: true },
    );
    expect(await markers(db)).toEqual(['audit']);
  });

  it("'requires_new' on an in-memory database is unsupported (one connection only)", async () => {
    const { sqlite } = await import('../../src/sql/sqlite/index.js');
    const db = sqlite({ filename: ':memory:' });
    const err = await db
      .transaction(() => db.transaction(async () => {}, { propagation: 'requires_new' }), { readOnly: true })
      .catch((e: unknown) => e);
    await db.close();
    expect(err).toMatchObject({ code: 'E_UNSUPPORTED' });
  });

  it("'supports' joins when there is a transaction and runs without one otherwise", async () => {
    const db = await setup();
    await db.transaction(async (tx) => {
      expect(await db.transaction(async (t) => t, { propagation: 'supports' })).toBe(tx);
    });
    const seen = await db.transaction(
      async (t) => {
        await db.execute("INSERT INTO marks VALUES ('autocommit')");
        return t;
      },
      { propagation: 'supports' },
    );
    expect(seen).toBeUndefined();
    expect(await markers(db)).toEqual(['autocommit']);
  });

  it("'not_supported' suspends the transaction: reads run outside it, writes would self-deadlock", async () => {
    const db = await setup();
    await db.execute("INSERT INTO marks VALUES ('committed-before')");
    await db.transaction(async (tx) => {
      await tx.execute("INSERT INTO marks VALUES ('uncommitted')");
      await db.transaction(
        async (none) => {
          expect(none).toBeUndefined();
          expect(currentTransaction(db)).toBeUndefined();
          // another connection: it does not see the suspended transaction's write
          expect(await markers(db)).toEqual(['committed-before']);
          await expect(db.execute("INSERT INTO marks VALUES ('x')")).rejects.toMatchObject({
            code: 'E_SELF_DEADLOCK',
          });
        },
        { propagation: 'not_supported' },
      );
      expect(currentTransaction(db)).toBe(tx);
      tx.setRollbackOnly();
    });
  });

  it("'never' throws inside a transaction and runs without one outside", async () => {
    const db = await setup();
    await expect(
      db.transaction(() => db.transaction(async () => {}, { propagation: 'never' })),
    ).rejects.toMatchObject({ code: 'E_PROPAGATION' });
    expect(await db.transaction(async (t) => t, { propagation: 'never' })).toBeUndefined();
  });

  it("'mandatory' joins an open transaction and throws without one", async () => {
    const db = await setup();
    await expect(db.transaction(async () => {}, { propagation: 'mandatory' })).rejects.toMatchObject({
      code: 'E_PROPAGATION',
    });
    await db.transaction(async (tx) => {
      expect(await db.transaction(async (t) => t, { propagation: 'mandatory' })).toBe(tx);
    });
  });

  it("'nested' without a transaction starts one; inside one it is a savepoint", async () => {
    const db = await setup();
    expect(await db.transaction(async (t) => t.depth, { propagation: 'nested' })).toBe(1);
    expect(await db.transaction(() => db.transaction(async (t) => t.depth, { propagation: 'nested' }))).toBe(
      2,
    );
  });

  it('limits how many transactions one call chain may suspend', async () => {
    const db = await setup({ maxSuspendedDepth: 1 });
    const err = await db
      .transaction(
        () =>
          db.transaction(() => db.transaction(async () => {}, { propagation: 'not_supported' }), {
            propagation: 'requires_new',
            readOnly: true,
          }),
        { readOnly: true },
      )
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'E_PROPAGATION' });
    expect((err as Error).message).toMatch(/maxSuspendedDepth/);
    // db.begin() inside a transaction suspends it too, under the same limit.
    const viaBegin = await db
      .transaction(
        () =>
          db.transaction(() => db.begin({ readOnly: true }), { propagation: 'requires_new', readOnly: true }),
        { readOnly: true },
      )
      .catch((e: unknown) => e);
    expect(viaBegin).toMatchObject({ code: 'E_PROPAGATION' });
  });
});

// ---------------------------------------------------------------------------------------
// Property: random call trees behave exactly like a model of Spring's rules on SQLite.

interface Node {
  propagation: Propagation | undefined;
  readOnly: boolean;
  insert: boolean;
  throws: boolean;
  catchChild: boolean;
  child: Node | undefined;
}

const nodeArb: fc.Arbitrary<Node> = fc.letrec<{ node: Node }>((tie) => ({
  node: fc.record({
    propagation: fc.option(fc.constantFrom(...PROPAGATIONS), { nil: undefined }),
    readOnly: fc.boolean(),
    insert: fc.boolean(),
    throws: fc.boolean(),
    catchChild: fc.boolean(),
    child: fc.option(tie('node'), { nil: undefined, depthSize: 'small', maxDepth: 4 }),
  }),
})).node;

class Fail extends Error {
  constructor(readonly code: string) {
    super(code);
  }
}

interface ModelTx {
  rows: string[];
  readOnly: boolean;
  innerFailed: boolean;
  depth: number;
}
interface Ctx {
  tx: ModelTx | undefined;
  depth: number;
  suspended: ModelTx[];
}

const MAX_DEPTH = 3;
const MAX_SUSPENDED = 2;

/** The expected outcome: committed markers and the error code reaching the top. */
function model(root: Node): { committed: string[]; error: string | undefined } {
  const committed: string[] = [];
  const suspendedWriter = (ctx: Ctx) => ctx.suspended.some((t) => !t.readOnly);

  function run(node: Node, id: string, ctx: Ctx): undefined {
    const p = node.propagation ?? (ctx.tx ? 'nested' : 'required');
    const suspend = (): Ctx['suspended'] => {
      if (ctx.suspended.length >= MAX_SUSPENDED) throw new Fail('E_PROPAGATION');
      return [...ctx.suspended, ctx.tx!];
    };
    switch (p) {
      case 'required':
        return ctx.tx ? join(node, id, ctx) : owned(node, id, ctx.suspended);
      case 'mandatory':
        if (!ctx.tx) throw new Fail('E_PROPAGATION');
        return join(node, id, ctx);
      case 'supports':
        return ctx.tx
          ? join(node, id, ctx)
          : body(node, id, { tx: undefined, depth: 0, suspended: ctx.suspended });
      case 'nested':
        return ctx.tx ? nested(node, id, ctx) : owned(node, id, ctx.suspended);
      case 'requires_new':
        return owned(node, id, ctx.tx ? suspend() : ctx.suspended);
      case 'not_supported':
        return body(node, id, { tx: undefined, depth: 0, suspended: ctx.tx ? suspend() : ctx.suspended });
      case 'never':
        if (ctx.tx) throw new Fail('E_PROPAGATION');
        return body(node, id, { tx: undefined, depth: 0, suspended: ctx.suspended });
    }
  }

  function owned(node: Node, id: string, suspended: ModelTx[]): undefined {
    if (suspended.length > 0 && !node.readOnly && suspendedWriter({ tx: undefined, depth: 0, suspended })) {
      throw new Fail('E_SELF_DEADLOCK');
    }
    const tx: ModelTx = { rows: [], readOnly: node.readOnly, innerFailed: false, depth: 1 };
    body(node, id, { tx, depth: 1, suspended });
    if (tx.innerFailed) throw new Fail('E_TX_ROLLED_BACK');
    committed.push(...tx.rows);
  }

  function join(node: Node, id: string, ctx: Ctx): undefined {
    try {
      body(node, id, ctx);
    } catch (e) {
      if (!ctx.tx!.innerFailed) {
        ctx.tx!.innerFailed = true;
        ctx.tx!.depth = ctx.depth;
      }
      throw e;
    }
  }

  function nested(node: Node, id: string, ctx: Ctx): undefined {
    const tx = ctx.tx!;
    if (tx.innerFailed) throw new Fail('E_TX_ROLLBACK_ONLY');
    if (ctx.depth + 1 > MAX_DEPTH) throw new Fail('E_NESTING_DEPTH');
    const mark = tx.rows.length;
    try {
      body(node, id, { ...ctx, depth: ctx.depth + 1 });
    } catch (e) {
      tx.rows.length = mark;
      if (tx.innerFailed && tx.depth >= ctx.depth + 1) tx.innerFailed = false;
      throw e;
    }
  }

  function body(node: Node, id: string, ctx: Ctx): undefined {
    if (node.insert) {
      if (ctx.tx) {
        if (ctx.tx.innerFailed) throw new Fail('E_TX_ROLLBACK_ONLY');
        if (ctx.tx.readOnly) throw new Fail('E_READ_ONLY');
        ctx.tx.rows.push(id);
      } else {
        if (suspendedWriter(ctx)) throw new Fail('E_SELF_DEADLOCK');
        committed.push(id);
      }
    }
    if (node.child) {
      try {
        run(node.child, `${id}c`, ctx);
      } catch (e) {
        if (!node.catchChild) throw e;
      }
    }
    if (node.throws) throw new Fail('boom');
  }

  try {
    run(root, 'm', { tx: undefined, depth: 0, suspended: [] });
    return { committed: committed.sort(), error: undefined };
  } catch (e) {
    return { committed: committed.sort(), error: (e as Fail).code };
  }
}

async function real(
  db: SqliteDatabase,
  root: Node,
): Promise<{ committed: string[]; error: string | undefined }> {
  const exec = (node: Node, id: string): Promise<void> =>
    db.transaction(
      async () => {
        if (node.insert) await db.execute('INSERT INTO marks VALUES (?)', [id]);
        if (node.child) {
          try {
            await exec(node.child, `${id}c`);
          } catch (e) {
            if (!node.catchChild) throw e;
          }
        }
        if (node.throws) throw new Fail('boom');
      },
      { ...(node.propagation ? { propagation: node.propagation } : {}), readOnly: node.readOnly } as never,
    );
  let error: string | undefined;
  try {
    await exec(root, 'm');
  } catch (e) {
    error = e instanceof Fail ? e.code : e instanceof TxkitError ? e.code : String(e);
  }
  return { committed: await markers(db), error };
}

describe('propagation matches the model (property-based)', () => {
  it('random call trees commit exactly what the model commits and fail the same way', async () => {
    const db = await setup({ maxSuspendedDepth: MAX_SUSPENDED, maxNestingDepth: MAX_DEPTH });
    await fc.assert(
      fc.asyncProperty(nodeArb, async (tree) => {
        await db.execute('DELETE FROM marks');
        const expected = model(tree);
        const actual = await real(db, tree);
        expect(actual).toEqual(expected);
        expect(db.inTransaction).toBe(false);
        expect(db.metrics().active).toBe(0);
      }),
      { numRuns: 300 },
    );
  });
});
