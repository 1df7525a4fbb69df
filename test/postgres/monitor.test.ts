/**
 * Monitoring helpers on a real blocking chain: A holds row 1, B holds row 2 and waits for
 * row 1, C waits for row 2.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chainsOf, PgMonitor } from '../../src/sql/postgres/monitor.js';
import { prepareTransaction, rollbackPrepared } from '../../src/sql/postgres/prepared.js';
import { connect, createTestDatabase, PG_URL, type TestDatabase, waitUntilBlocked } from './helpers.js';

describe('chainsOf', () => {
  it('follows first blockers to the root and flags cycles', () => {
    const chains = chainsOf([
      { pid: 3, blockedBy: [2], waitingMs: 5, query: '' },
      { pid: 2, blockedBy: [1, 9], waitingMs: 9, query: '' },
      { pid: 7, blockedBy: [8], waitingMs: 1, query: '' },
      { pid: 8, blockedBy: [7], waitingMs: 1, query: '' },
    ]);
    expect(chains.map((c) => [c.chain, c.root, c.cycle])).toEqual([
      [[3, 2, 1], 1, false],
      [[2, 1], 1, false],
      [[7, 8, 7], 7, true],
      [[8, 7, 8], 8, true],
    ]);
  });
});

describe.skipIf(!PG_URL)('PgMonitor (real server)', () => {
  let tdb: TestDatabase;
  let a: pg.Client;
  let b: pg.Client;
  let c: pg.Client;
  let observer: pg.Client;
  const pid = (x: pg.Client) => (x as unknown as { processID: number }).processID;

  beforeAll(async () => {
    tdb = await createTestDatabase('monitor');
    [a, b, c, observer] = await Promise.all([
      connect(tdb.url),
      connect(tdb.url),
      connect(tdb.url),
      connect(tdb.url),
    ]);
    await observer.query('CREATE TABLE t (id int PRIMARY KEY, v text)');
    await observer.query("INSERT INTO t VALUES (1, 'one'), (2, 'two')");
  });
  afterAll(async () => {
    for (const x of [a, b, c, observer]) await x?.end();
    await tdb?.drop();
  });

  it('reports activity, locks, blocked sessions and the chain to the root blocker', async () => {
    await a.query('BEGIN');
    await a.query("UPDATE t SET v = 'secret-a' WHERE id = 1");
    await b.query('BEGIN');
    await b.query("UPDATE t SET v = 'b' WHERE id = 2");
    const bWaits = b.query("UPDATE t SET v = 'secret-b' WHERE id = 1");
    await waitUntilBlocked(observer, pid(b));
    await c.query('BEGIN');
    const cWaits = c.query("UPDATE t SET v = 'c' WHERE id = 2");
    await waitUntilBlocked(observer, pid(c));
    try {
      const m = new PgMonitor(observer);
      const activity = await m.activity({ minXactAgeMs: 0 });
      const mine = activity.filter((r) => [pid(a), pid(b), pid(c)].includes(r.pid));
      expect(mine).toHaveLength(3);
      expect(mine.find((r) => r.pid === pid(a))!.state).toBe('idle in transaction');
      const bRow = mine.find((r) => r.pid === pid(b))!;
      expect(bRow.waitEventType).toBe('Lock');
      expect(bRow.query).toBe("UPDATE t SET v = '?' WHERE id = 1"); // literal redacted
      expect(bRow.xactAgeMs).toBeGreaterThanOrEqual(0);
      expect(await m.activity({ minXactAgeMs: 3_600_000 })).toEqual([]);
      expect((await m.activity({ states: ['idle in transaction'] })).map((r) => r.pid)).toContain(pid(a));

      const waiting = await m.locks({ waitingOnly: true });
      expect(waiting.map((l) => l.pid).sort()).toEqual([pid(b), pid(c)].sort());
      expect(waiting.every((l) => !l.granted && (l.waitingMs ?? 0) >= 0)).toBe(true);
      expect((await m.locks()).some((l) => l.pid === pid(a) && l.granted && l.relation === 't')).toBe(true);

      const blocked = await m.blocked();
      expect(blocked.find((r) => r.pid === pid(b))!.blockedBy).toEqual([pid(a)]);
      expect(blocked.find((r) => r.pid === pid(c))!.blockedBy).toEqual([pid(b)]);
      const chains = await m.blockingChains();
      expect(chains.find((ch) => ch.pid === pid(c))).toMatchObject({
        chain: [pid(c), pid(b), pid(a)],
        root: pid(a),
        cycle: false,
      });
      expect(await new PgMonitor(observer, { redact: false }).blocked()).toContainEqual(
        expect.objectContaining({ query: "UPDATE t SET v = 'secret-b' WHERE id = 1" }),
      );
    } finally {
      await a.query('ROLLBACK');
      await bWaits;
      await b.query('ROLLBACK');
      await cWaits;
      await c.query('ROLLBACK');
    }
  });

  it('reports the oldest prepared transaction and the NOTIFY queue usage', async () => {
    const m = new PgMonitor(observer);
    expect(await m.oldestPrepared()).toBeNull();
    await a.query('BEGIN');
    await a.query('SELECT 1');
    await prepareTransaction(a, 'monitor:1');
    await b.query('BEGIN');
    await b.query('SELECT 1');
    await prepareTransaction(b, 'monitor:2');
    try {
      expect((await m.oldestPrepared())!.gid).toBe('monitor:1');
    } finally {
      await rollbackPrepared(observer, 'monitor:1');
      await rollbackPrepared(observer, 'monitor:2');
    }
    const usage = await m.notificationQueueUsage();
    expect(usage).toBeGreaterThanOrEqual(0);
    expect(usage).toBeLessThan(1);
  });
});
