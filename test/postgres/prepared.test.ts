/**
 * Two-phase commit primitives on the real server.
 */
import fc from 'fast-check';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  InvalidIdentifierError,
  LockTimeoutError,
  PreparedTransactionsDisabledError,
  PrepareFailedError,
} from '../../src/core/errors.js';
import { classifyPgError } from '../../src/sql/postgres/errors.js';
import {
  assertGid,
  commitPrepared,
  GID_PATTERN,
  listPrepared,
  makeGid,
  PreparedTransactionNotFoundError,
  preflightPrepared,
  prepareTransaction,
  rollbackPrepared,
} from '../../src/sql/postgres/prepared.js';
import { findPgBinDir, startPrivateCluster } from '../support/postgres-server.js';
import { connect, createTestDatabase, PG_URL, rejection, type TestDatabase } from './helpers.js';

describe('GID validation', () => {
  it('accepts safe GIDs up to 199 bytes and rejects everything that could break the literal', () => {
    expect(() => assertGid('a'.repeat(199))).not.toThrow();
    expect(() => assertGid(makeGid('orders', 'bank-1'))).not.toThrow();
    for (const bad of [
      '',
      'a'.repeat(200),
      "x'; DROP TABLE t; --",
      'a b',
      "it's",
      'a\\b',
      'é',
      'a\u0000',
      42,
      null,
    ]) {
      const e = (() => {
        try {
          assertGid(bad);
        } catch (err) {
          return err;
        }
      })();
      expect(e, String(bad)).toBeInstanceOf(InvalidIdentifierError);
      expect((e as Error).message).toContain('A-Z a-z 0-9 _ . : -');
    }
  });

  it('accepts exactly the strings of the safe alphabet under 200 bytes (property)', () => {
    fc.assert(
      fc.property(
        fc.string({
          maxLength: 220,
          unit: fc.oneof(
            fc.constantFrom('a', 'Z', '9', '_', '.', ':', '-'),
            fc.constantFrom("'", ' ', '\\', ';', 'é', '%'),
            fc.string({ minLength: 1, maxLength: 1, unit: 'binary' }),
          ),
        }),
        (s) => {
          const ok = s.length > 0 && s.length <= 199 && GID_PATTERN.test(s);
          let accepted = true;
          try {
            assertGid(s);
          } catch {
            accepted = false;
          }
          return accepted === ok && (!accepted || !/['\\\s]/.test(s));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('makeGid keeps the full UUID', () => {
    const gid = makeGid('p', 'x');
    expect(gid).toMatch(/^p:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}:x$/);
    expect(() => makeGid("p'", 'x')).toThrow(InvalidIdentifierError);
  });
});

describe.skipIf(!PG_URL)('prepared transactions (real server)', () => {
  let db: TestDatabase;
  let a: pg.Client;
  let b: pg.Client;
  beforeAll(async () => {
    db = await createTestDatabase('prepared');
    a = await connect(db.url);
    b = await connect(db.url);
    await a.query('CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL)');
    await a.query('INSERT INTO t VALUES (1, 0)');
  });
  afterAll(async () => {
    await a?.end();
    await b?.end();
    await db?.drop();
  });

  it('preflight passes when max_prepared_transactions > 0', async () => {
    expect(await preflightPrepared(a)).toBeGreaterThan(0);
  });

  it('prepare keeps the row lock; commitPrepared from another connection makes the work visible', async () => {
    const gid = makeGid('it', 'commit');
    await a.query('BEGIN');
    await a.query('UPDATE t SET v = v + 1 WHERE id = 1');
    await prepareTransaction(a, gid);
    // the connection is free again (no transaction), but the lock is held by the prepared tx
    expect((await a.query('SELECT 1 AS x')).rows[0].x).toBe(1);
    await b.query('BEGIN');
    await b.query("SELECT set_config('lock_timeout', '50', true)");
    const e = await rejection(b.query('UPDATE t SET v = 100 WHERE id = 1'));
    await b.query('ROLLBACK');
    expect(classifyPgError(e)).toBeInstanceOf(LockTimeoutError);
    const listed = await listPrepared(b, { prefix: 'it:' });
    expect(listed.map((p) => p.gid)).toContain(gid);
    const info = listed.find((p) => p.gid === gid)!;
    expect(info.database).toBe(db.name);
    expect(info.owner).toBeTruthy();
    expect(info.preparedAt).toBeInstanceOf(Date);
    expect(info.ageMs).toBeGreaterThanOrEqual(0);
    await commitPrepared(b, gid);
    expect((await b.query('SELECT v FROM t WHERE id = 1')).rows[0].v).toBe(1);
    expect(await listPrepared(b, { prefix: 'it:' })).toEqual([]);
    // a second commit: the gid is gone, and only a decision log can say what that means
    expect(await rejection(commitPrepared(b, gid))).toBeInstanceOf(PreparedTransactionNotFoundError);
  });

  it('a PREPARE answered with ROLLBACK (aborted transaction) is a NO vote, and nothing stays prepared', async () => {
    const gid = makeGid('it', 'novote');
    await a.query('BEGIN');
    await a.query('UPDATE t SET v = v + 1 WHERE id = 1');
    await rejection(a.query('SELECT 1/0'));
    const e = await rejection(prepareTransaction(a, gid));
    expect(e).toBeInstanceOf(PrepareFailedError);
    expect((e as Error).message).toContain('NO vote');
    expect(await listPrepared(a, { prefix: gid })).toEqual([]);
    expect((await a.query('SELECT v FROM t WHERE id = 1')).rows[0].v).toBe(1);
    // and the connection is usable, outside any transaction
    expect((await a.query('SELECT 2 AS x')).rows[0].x).toBe(2);
  });

  it('rollbackPrepared undoes the work and is idempotent', async () => {
    const gid = makeGid('it', 'rollback');
    await a.query('BEGIN');
    await a.query('UPDATE t SET v = v + 10 WHERE id = 1');
    await prepareTransaction(a, gid);
    expect(await rollbackPrepared(b, gid)).toBe(true);
    expect(await rollbackPrepared(b, gid)).toBe(false);
    expect((await a.query('SELECT v FROM t WHERE id = 1')).rows[0].v).toBe(1);
  });

  it('a duplicate GID is a NO vote for the second preparer', async () => {
    const gid = makeGid('it', 'dup');
    await a.query('BEGIN');
    await a.query('SELECT 1');
    await prepareTransaction(a, gid);
    await b.query('BEGIN');
    await b.query('UPDATE t SET v = v WHERE id = 1');
    const e = await rejection(prepareTransaction(b, gid));
    expect(e).toBeInstanceOf(PrepareFailedError);
    expect((e as PrepareFailedError).sqlState).toBe('42710');
    await b.query('ROLLBACK');
    await rollbackPrepared(a, gid);
  });

  it('listPrepared compares the prefix literally (no LIKE wildcards) and sorts oldest first', async () => {
    const g1 = makeGid('lit_a', '1');
    const g2 = makeGid('lit_a', '2');
    for (const gid of [g1, g2]) {
      await a.query('BEGIN');
      await a.query('SELECT 1');
      await prepareTransaction(a, gid);
    }
    expect((await listPrepared(a, { prefix: 'lit_a:' })).map((p) => p.gid)).toEqual([g1, g2]);
    expect(await listPrepared(a, { prefix: 'lit%' })).toEqual([]);
    expect(await listPrepared(a, { prefix: 'lit_' + 'b' })).toEqual([]);
    await rollbackPrepared(a, g1);
    await rollbackPrepared(a, g2);
  });

  it('validates the GID before sending anything', async () => {
    await a.query('BEGIN');
    const e = await rejection(prepareTransaction(a, "x'; COMMIT; --"));
    expect(e).toBeInstanceOf(InvalidIdentifierError);
    // the transaction is untouched: still open
    expect((await a.query('SELECT 1 AS x')).rows[0].x).toBe(1);
    await a.query('ROLLBACK');
    expect(await rejection(commitPrepared(a, 'a b'))).toBeInstanceOf(InvalidIdentifierError);
    expect(await rejection(rollbackPrepared(a, "'"))).toBeInstanceOf(InvalidIdentifierError);
  });
});

describe.skipIf(!findPgBinDir() || process.env.TXKIT_PG_URL === undefined)(
  'prepared transactions disabled (max_prepared_transactions = 0)',
  () => {
    it('preflight and PREPARE fail with PreparedTransactionsDisabledError', async () => {
      const server = await startPrivateCluster({ settings: { max_prepared_transactions: '0' } });
      try {
        const c = await connect(server!.env.TXKIT_PG_URL!);
        try {
          const pre = await rejection(preflightPrepared(c));
          expect(pre).toBeInstanceOf(PreparedTransactionsDisabledError);
          expect((pre as Error).message).toContain('max_prepared_transactions');
          await c.query('BEGIN');
          const e = await rejection(prepareTransaction(c, 'x'));
          expect(e).toBeInstanceOf(PreparedTransactionsDisabledError);
          expect((e as PreparedTransactionsDisabledError).sqlState).toBe('55000');
        } finally {
          await c.end();
        }
      } finally {
        await server?.stop();
      }
    });
  },
);
