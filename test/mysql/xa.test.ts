import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/core/errors.js';
import { XaError } from '../../src/sql/mysql/errors.js';
import {
  normalizeXid,
  xaCommit,
  xaEnd,
  xaPrepare,
  xaRecover,
  xaRollback,
  xaStart,
  xidSql,
} from '../../src/sql/mysql/xa.js';
import {
  canStartPrivateInstance,
  type PrivateInstance,
  startPrivateInstance,
} from '../support/mysql-server.js';
import { tableName, url } from './helpers.js';

describe('xid validation', () => {
  it('sends xids as hex literals with defaults filled in', () => {
    expect(xidSql('tx1')).toBe("X'747831',X'',1");
    expect(xidSql({ gtrid: 'order:42', bqual: 'db1', formatId: 7 })).toBe("X'6f726465723a3432',X'646231',7");
    expect(normalizeXid('a')).toEqual({ gtrid: 'a', bqual: '', formatId: 1 });
  });

  it.each([["x'); DROP TABLE t; --"], ["a','b"], ['a b'], [''], ['x'.repeat(65)], ['tx\u0000'], ['ü']])(
    'rejects gtrid %j and says what is allowed',
    (gtrid) => {
      expect(() => xidSql(gtrid)).toThrow(InvalidArgumentError);
      expect(() => xidSql(gtrid)).toThrow(/A-Z a-z 0-9 _ \. : -/);
    },
  );

  it('rejects bad bqual and formatId', () => {
    expect(() => xidSql({ gtrid: 'a', bqual: "'; --" })).toThrow(/bqual/);
    expect(() => xidSql({ gtrid: 'a', formatId: -1 })).toThrow(/formatId/);
    expect(() => xidSql({ gtrid: 'a', formatId: 1.5 })).toThrow(/formatId/);
    expect(() => xidSql({ gtrid: 'a', formatId: 2 ** 31 })).toThrow(/formatId/);
    expect(() => xidSql(null as never)).toThrow(InvalidArgumentError);
  });
});

describe.skipIf(!url)('XA on the shared server', () => {
  let pool: mysql.Pool;
  const t = tableName('xa');
  const prefix = `t${process.pid}x`;

  beforeAll(async () => {
    pool = mysql.createPool({ uri: url, connectionLimit: 4 });
    await pool.query(`CREATE TABLE \`${t}\` (id INT PRIMARY KEY)`);
  });
  afterAll(async () => {
    for (const x of await xaRecover(pool, { prefix })) await xaRollback(pool, x);
    await pool.query(`DROP TABLE IF EXISTS \`${t}\``);
    await pool.end();
  });

  it('prepare, list by prefix, commit from another connection; rollback is idempotent', async () => {
    const a = await mysql.createConnection(url as string);
    const b = await mysql.createConnection(url as string);
    const x1 = { gtrid: `${prefix}-1`, bqual: 'b1' };
    const x2 = `${prefix}-2`;
    await xaStart(a, x1);
    await a.query(`INSERT INTO \`${t}\` VALUES (1)`);
    await xaEnd(a, x1);
    await xaPrepare(a, x1);
    await a.end(); // detaches the prepared branch
    await xaStart(b, x2);
    await b.query(`INSERT INTO \`${t}\` VALUES (2)`);
    await xaEnd(b, x2);
    await xaPrepare(b, x2);
    await b.end();

    const listed = await xaRecover(pool, { prefix });
    expect(listed).toEqual(
      expect.arrayContaining([
        { gtrid: `${prefix}-1`, bqual: 'b1', formatId: 1 },
        { gtrid: `${prefix}-2`, bqual: '', formatId: 1 },
      ]),
    );
    expect(await xaRecover(pool, { prefix: `${prefix}-1` })).toHaveLength(1);
    await expect(xaRecover(pool, { prefix: "'" })).rejects.toThrow(InvalidArgumentError);

    await xaCommit(pool, x1);
    expect(await xaRollback(pool, x2)).toBe(true);
    expect(await xaRollback(pool, x2, { detachWaitMs: 0 })).toBe(false);
    await expect(xaCommit(pool, x1, { detachWaitMs: 0 })).rejects.toBeInstanceOf(XaError);
    const [rs] = (await pool.query(`SELECT id FROM \`${t}\` ORDER BY id`)) as [
      Array<{ id: number }>,
      unknown,
    ];
    expect(rs.map((r) => r.id)).toEqual([1]);
    expect(await xaRecover(pool, { prefix })).toEqual([]);
  });

  it('one-phase commit of an ended branch', async () => {
    const c = await mysql.createConnection(url as string);
    try {
      const x = `${prefix}-1p`;
      await xaStart(c, x);
      await c.query(`INSERT INTO \`${t}\` VALUES (3)`);
      await xaEnd(c, x);
      await xaCommit(c, x, { onePhase: true });
      const [rs] = (await c.query(`SELECT COUNT(*) AS n FROM \`${t}\` WHERE id = 3`)) as [
        Array<{ n: number }>,
        unknown,
      ];
      expect(Number(rs[0]?.n)).toBe(1);
    } finally {
      await c.end();
    }
  });
});

describe.skipIf(!canStartPrivateInstance())('XA survives a server crash (own private instance)', () => {
  let server: PrivateInstance;
  beforeAll(async () => {
    server = await startPrivateInstance();
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
  });

  it('prepared, server killed and restarted, then recovered and committed', async () => {
    const u = server.env.TXKIT_MYSQL_URL as string;
    const c = await mysql.createConnection(u);
    await c.query('CREATE TABLE xa_crash (id INT PRIMARY KEY, note VARCHAR(20))');
    const xid = { gtrid: 'crash-test-1', bqual: 'branch-a', formatId: 42 };
    await xaStart(c, xid);
    await c.query("INSERT INTO xa_crash VALUES (1, 'prepared')");
    await xaEnd(c, xid);
    await xaPrepare(c, xid);
    c.destroy();

    await server.restart({ crash: true });

    const d = await mysql.createConnection(u);
    try {
      // Not visible before the decision.
      const [before] = (await d.query('SELECT COUNT(*) AS n FROM xa_crash')) as [
        Array<{ n: number }>,
        unknown,
      ];
      expect(Number(before[0]?.n)).toBe(0);
      expect(await xaRecover(d, { prefix: 'crash-' })).toEqual([xid]);
      await xaCommit(d, xid);
      const [after] = (await d.query('SELECT id, note FROM xa_crash')) as [unknown[], unknown];
      expect(after).toEqual([{ id: 1, note: 'prepared' }]);
      expect(await xaRecover(d)).toEqual([]);
    } finally {
      await d.end();
    }
  }, 60_000);
});
