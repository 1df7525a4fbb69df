/**
 * Each anomaly is provoked for real at each isolation level, and what happens must match
 * what `db.capabilities` claims: an anomaly is observed exactly when the level does not
 * list it under `prevents`. Two manual transactions interleave deterministically; when
 * one blocks on a lock the probe sees it in InnoDB's status, never by sleeping.
 */
import mysql2 from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Anomaly, IsolationLevel } from '../../src/core/resource.js';
import { isWaitingForLock, type MysqlDatabase, mysql } from '../../src/sql/mysql/index.js';
import { tableName, url } from './helpers.js';

type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };
const settle = <T>(p: Promise<T>): Promise<Settled<T>> =>
  p.then(
    (value) => ({ ok: true as const, value }),
    (error) => ({ ok: false as const, error }),
  );

describe.skipIf(!url)('isolation levels do what db.capabilities says', () => {
  let db: MysqlDatabase;
  let side: mysql2.Connection;
  let observer: mysql2.Pool;
  const t = tableName('iso');

  const reset = async () => {
    await db.execute(`DELETE FROM \`${t}\``);
    await db.execute(`INSERT INTO \`${t}\` VALUES (1, 100), (2, 100)`);
  };
  const v = async (id: number) =>
    (await db.query<{ v: number }>(`SELECT v FROM \`${t}\` WHERE id = ?`, [id]))[0]?.v as number;

  /** 'blocked' when the transaction on `threadId` waits for a lock, 'done' when `p` settled first. */
  const blockedOrDone = async (p: Promise<unknown>, threadId: number): Promise<'blocked' | 'done'> => {
    let done = false;
    p.then(
      () => {
        done = true;
      },
      () => {
        done = true;
      },
    );
    for (let i = 0; i < 500; i++) {
      await new Promise((r) => setTimeout(r, 5));
      if (done) return 'done';
      if (await isWaitingForLock(observer, threadId)) return 'blocked';
    }
    throw new Error('neither finished nor blocked');
  };

  /**
   * Two read-modify-write transactions: each reads, then writes what it read plus its change.
   * Returns whether both committed.
   */
  const twoWriters = async (
    level: IsolationLevel,
    read: string,
    write1: (seen: number) => [string, unknown[]],
    write2: (seen: number) => [string, unknown[]],
  ): Promise<boolean> => {
    const t1 = await db.begin({ isolation: level, lockWaitTimeoutSec: 5 });
    const t2 = await db.begin({ isolation: level, lockWaitTimeoutSec: 5 });
    const s1 = Number((await t1.query<{ x: number }>(read))[0]?.x);
    const s2 = Number((await t2.query<{ x: number }>(read))[0]?.x);
    const p1 = settle(t1.execute(...write1(s1)));
    let ok1: boolean;
    let ok2: boolean;
    if ((await blockedOrDone(p1, t1.threadId)) === 'done') {
      ok1 = (await p1).ok && (await settle(t1.commit())).ok;
      if (!ok1) await t1.rollback().catch(() => {});
      const r2 = await settle(t2.execute(...write2(s2)));
      ok2 = r2.ok && (await settle(t2.commit())).ok;
      if (!ok2) await t2.rollback().catch(() => {});
    } else {
      // t1 waits for t2: t2's write closes a cycle; InnoDB rolls one back.
      const [r1, r2] = await Promise.all([p1, settle(t2.execute(...write2(s2)))]);
      ok1 = r1.ok && (await settle(t1.commit())).ok;
      if (!ok1) await t1.rollback().catch(() => {});
      ok2 = r2.ok && (await settle(t2.commit())).ok;
      if (!ok2) await t2.rollback().catch(() => {});
    }
    return ok1 && ok2;
  };

  const probes: Record<Anomaly, (level: IsolationLevel) => Promise<boolean>> = {
    async dirty_read(level) {
      const w = await db.begin();
      await w.execute(`UPDATE \`${t}\` SET v = 999 WHERE id = 1`);
      const r = await db.begin({ isolation: level, lockWaitTimeoutSec: 1 });
      const got = await settle(r.query<{ v: number }>(`SELECT v FROM \`${t}\` WHERE id = 1`));
      await r.rollback();
      await w.rollback();
      return got.ok && got.value[0]?.v === 999;
    },
    async non_repeatable_read(level) {
      const r = await db.begin({ isolation: level });
      const first = (await r.query<{ v: number }>(`SELECT v FROM \`${t}\` WHERE id = 1`))[0]?.v;
      await settle(side.query(`UPDATE \`${t}\` SET v = v + 1 WHERE id = 1`));
      const second = (await r.query<{ v: number }>(`SELECT v FROM \`${t}\` WHERE id = 1`))[0]?.v;
      await r.rollback();
      return first !== second;
    },
    async phantom_read(level) {
      const r = await db.begin({ isolation: level });
      const count = async () =>
        Number((await r.query<{ n: number }>(`SELECT COUNT(*) AS n FROM \`${t}\` WHERE v >= 0`))[0]?.n);
      const first = await count();
      await settle(side.query(`INSERT INTO \`${t}\` VALUES (3, 5)`));
      const second = await count();
      await r.rollback();
      return first !== second;
    },
    async lost_update(level) {
      const both = await twoWriters(
        level,
        `SELECT v AS x FROM \`${t}\` WHERE id = 1`,
        (seen) => [`UPDATE \`${t}\` SET v = ? WHERE id = 1`, [seen + 10]],
        (seen) => [`UPDATE \`${t}\` SET v = ? WHERE id = 1`, [seen + 10]],
      );
      return both && (await v(1)) === 110;
    },
    async write_skew(level) {
      // Rule: at least one of rows 1 and 2 stays above zero. Each takes one off after checking.
      const both = await twoWriters(
        level,
        `SELECT COUNT(*) AS x FROM \`${t}\` WHERE id IN (1, 2) AND v > 0`,
        (onCall) => [`UPDATE \`${t}\` SET v = IF(? >= 2, 0, v) WHERE id = 1`, [onCall]],
        (onCall) => [`UPDATE \`${t}\` SET v = IF(? >= 2, 0, v) WHERE id = 2`, [onCall]],
      );
      return both && (await v(1)) === 0 && (await v(2)) === 0;
    },
    async read_skew(level) {
      const r = await db.begin({ isolation: level });
      const a = (await r.query<{ v: number }>(`SELECT v FROM \`${t}\` WHERE id = 1`))[0]?.v as number;
      await settle(side.query(`UPDATE \`${t}\` SET v = IF(id = 1, v - 50, v + 50) WHERE id IN (1, 2)`));
      const b = (await r.query<{ v: number }>(`SELECT v FROM \`${t}\` WHERE id = 2`))[0]?.v as number;
      await r.rollback();
      return a + b !== 200;
    },
  };

  beforeAll(async () => {
    db = mysql({ uri: url, connectionLimit: 6 });
    observer = mysql2.createPool({ uri: url, connectionLimit: 2 });
    side = await mysql2.createConnection(url as string);
    // Side writes that would block give up quickly: a blocked write means "prevented".
    await side.query('SET SESSION innodb_lock_wait_timeout = 1');
    await db.execute(`CREATE TABLE \`${t}\` (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB`);
  });
  afterAll(async () => {
    await db?.execute(`DROP TABLE IF EXISTS \`${t}\``);
    await db?.close();
    await side?.end();
    await observer?.end();
  });

  it('repeatable read allows lost update and write skew on MariaDB by default', () => {
    const rr = db.capabilities.isolation['repeatable read'].prevents;
    expect(rr).not.toContain('lost_update');
    expect(rr).not.toContain('write_skew');
    expect(db.capabilities.isolation.serializable.prevents).toContain('write_skew');
  });

  const levels: IsolationLevel[] = ['read uncommitted', 'read committed', 'repeatable read', 'serializable'];
  it.each(levels)('%s', async (level) => {
    await db.serverInfo(); // capabilities are refined from the server's settings
    const prevents = db.capabilities.isolation[level].prevents;
    const observed: Record<string, boolean> = {};
    const expected: Record<string, boolean> = {};
    for (const [anomaly, probe] of Object.entries(probes) as [
      Anomaly,
      (l: IsolationLevel) => Promise<boolean>,
    ][]) {
      await reset();
      observed[anomaly] = await probe(level);
      expected[anomaly] = !prevents.includes(anomaly);
    }
    expect(observed).toEqual(expected);
  });
});
