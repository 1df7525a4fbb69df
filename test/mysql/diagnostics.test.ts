import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeadlockError } from '../../src/core/errors.js';
import { DeadlockMonitor, deadlockKey, fingerprint } from '../../src/sql/mysql/deadlock-monitor.js';
import type { DeadlockReport } from '../../src/sql/mysql/deadlock-parser.js';
import { simulateDeadlock } from '../../src/sql/mysql/deadlock-simulator.js';
import { InsufficientPrivilegeError } from '../../src/sql/mysql/errors.js';
import {
  allLocksSql,
  findCycles,
  LockInspector,
  lockChains,
  lockWaitSql,
} from '../../src/sql/mysql/lock-inspector.js';
import { waitingThreadIds } from '../../src/sql/mysql/lock-wait-barrier.js';
import { parseServerVersion } from '../../src/sql/mysql/server-info.js';
import { accountsTable, noProcessUrl, tableName, url, waitForLockWait } from './helpers.js';

describe('flavour-specific lock SQL and graph algorithms', () => {
  it('MySQL 8 reads performance_schema; MariaDB and MySQL 5.7 read INNODB_LOCK_WAITS, joined by lock id', () => {
    const my8 = parseServerVersion('8.0.36', 'MySQL Community Server - GPL');
    const maria = parseServerVersion('10.11.19-MariaDB-0+deb12u1', 'Debian 12');
    const my57 = parseServerVersion('5.7.44-log');
    expect(my8.flavor).toBe('mysql');
    expect(maria).toMatchObject({ flavor: 'mariadb', major: 10, minor: 11 });
    expect(lockWaitSql(my8)).toContain('performance_schema.data_lock_waits');
    expect(lockWaitSql(my8)).toContain('rl.engine_lock_id = w.requesting_engine_lock_id');
    expect(allLocksSql(my8)).toContain('performance_schema.data_locks');
    for (const info of [maria, my57]) {
      expect(lockWaitSql(info)).toContain('rl.lock_id = w.requested_lock_id');
      expect(lockWaitSql(info)).toContain('bl.lock_id = w.blocking_lock_id');
      expect(lockWaitSql(info)).not.toContain('performance_schema');
    }
  });

  it('finds cycles of any length once each, and wait chains', () => {
    const g = {
      nodes: ['1', '2', '3', '4', '5', '6'],
      edges: [
        { from: '1', to: '2' },
        { from: '2', to: '3' },
        { from: '3', to: '1' },
        { from: '4', to: '5' },
        { from: '5', to: '4' },
        { from: '6', to: '1' },
      ],
    };
    expect(findCycles(g)).toEqual([
      ['1', '2', '3'],
      ['4', '5'],
    ]);
    expect(findCycles({ nodes: ['7', '8'], edges: [{ from: '7', to: '8' }] })).toEqual([]);
    expect(
      lockChains({
        nodes: ['7', '8', '9'],
        edges: [
          { from: '7', to: '8' },
          { from: '8', to: '9' },
        ],
      }),
    ).toEqual([['7', '8', '9']]);
  });

  it('reads waiting threads from the TRANSACTIONS section of the status text', () => {
    const text = [
      'TRANSACTIONS',
      '------------',
      '---TRANSACTION 80, ACTIVE 3 sec starting index read',
      'mysql tables in use 1, locked 1',
      'LOCK WAIT 2 lock struct(s), heap size 1128, 1 row lock(s)',
      'MariaDB thread id 13, OS thread handle 1, query id 9 localhost 127.0.0.1 app Updating',
      '---TRANSACTION 79, ACTIVE 4 sec',
      '3 lock struct(s), heap size 1128, 2 row lock(s), undo log entries 1',
      'MariaDB thread id 12, OS thread handle 2, query id 8 localhost 127.0.0.1 app',
    ].join('\n');
    expect(waitingThreadIds(text)).toEqual([13]);
    expect(waitingThreadIds('no section')).toEqual([]);
  });

  it('fingerprints group statements that differ only in literals', () => {
    expect(fingerprint("UPDATE a SET b=b+1 WHERE k='A1'")).toBe(
      fingerprint("UPDATE a SET b=b+1 WHERE k='A2'"),
    );
    expect(fingerprint('SELECT * FROM t WHERE id = 12')).toBe('SELECT * FROM t WHERE id = ?');
  });
});

describe.skipIf(!url)('diagnostics on the real server', () => {
  let pool: mysql.Pool;
  let a: mysql.PoolConnection;
  let b: mysql.PoolConnection;
  const t = tableName('diag');

  beforeAll(async () => {
    pool = mysql.createPool({ uri: url, connectionLimit: 6 });
    a = await pool.getConnection();
    b = await pool.getConnection();
    await accountsTable(a, t, 3);
  });
  afterAll(async () => {
    a?.release();
    b?.release();
    await pool?.query(`DROP TABLE IF EXISTS \`${t}\``);
    await pool?.end();
  });

  it('current lock waits: one row per wait with the exact requested and blocking lock', async () => {
    await a.query('START TRANSACTION');
    await a.query(`UPDATE \`${t}\` SET v = v + 1 WHERE id IN (1, 2)`);
    await b.query('START TRANSACTION');
    const blocked = b.query(`UPDATE \`${t}\` SET v = v + 1 WHERE id = 1`).catch((e) => e);
    try {
      await waitForLockWait(a, b.threadId);
      const inspector = new LockInspector(pool);
      // InnoDB's I_S lock tables are a cache refreshed only after 100 ms without reads, and
      // other test files may be reading them: look again (bounded) until the wait shows.
      let waits = [] as Awaited<ReturnType<LockInspector['currentLockWaits']>>;
      for (let i = 0; i < 30 && waits.length === 0; i++) {
        if (i > 0) await new Promise((r) => setTimeout(r, 120));
        waits = (await inspector.currentLockWaits()).filter((w) => w.waitingThreadId === b.threadId);
      }
      expect(waits).toHaveLength(1);
      const [w] = waits;
      expect(w?.blockingThreadId).toBe(a.threadId);
      expect(w?.requestedLock).toMatchObject({ table: `test.${t}`, index: 'PRIMARY', data: '1', mode: 'X' });
      expect(w?.blockingLock?.trxId).toBe(w?.blockingTrxId);
      expect(w?.waitAgeSec).toBeGreaterThanOrEqual(0);
      const waiting = await inspector.waitingTransactions();
      expect(waiting.map((x) => x.threadId)).toContain(b.threadId);
      const aLocks = await inspector.locksForThread(a.threadId);
      expect(aLocks.length).toBeGreaterThan(0);
      expect(aLocks.every((l) => l.trxId === w?.blockingTrxId)).toBe(true);
      expect(await inspector.locksForThread(0)).toEqual([]);
      await expect(inspector.locksForThread(-1)).rejects.toThrow(/integer >= 0/);
      const graph = await inspector.waitGraph();
      expect(graph.edges).toContainEqual({ from: w?.waitingTrxId, to: w?.blockingTrxId });
      const report = await inspector.generateReport();
      expect(report.errors).toEqual([]);
      expect(report.summary.totalLockWaits).toBeGreaterThanOrEqual(1);
      expect(report.potentialRisks.lockChains).toContainEqual([w?.waitingTrxId, w?.blockingTrxId]);
      expect(await inspector.longWaits(3600)).toEqual([]);
    } finally {
      await a.query('ROLLBACK');
      await blocked;
      await b.query('ROLLBACK');
    }
  });

  it('simulated deadlock: exactly one victim, and the parsed report names both connections', async () => {
    const r = await simulateDeadlock(pool, { table: t, key: 'id', rows: [1, 2] });
    expect(r.error).toBeInstanceOf(DeadlockError);
    expect([1, 2]).toContain(r.victim);
    expect(r.report?.transactions).toHaveLength(2);
    const threads = r.report?.transactions.map((x) => x.threadId).sort();
    expect(threads).toEqual([...r.threadIds].sort());
    const victimThread = r.report?.transactions[(r.report?.victimIndex ?? 0) - 1]?.threadId;
    expect(victimThread).toBe(r.threadIds[r.victim - 1]);
    expect(r.report?.transactions[0]?.waitingFor?.table).toBe(`test.${t}`);
  });

  it('the monitor counts each deadlock once across many polls', async () => {
    const monitor = new DeadlockMonitor(pool, { pollIntervalMs: 60_000 });
    const seen: DeadlockReport[] = [];
    monitor.on('deadlock', ({ report }) => seen.push(report));
    await monitor.pollOnce(); // baseline
    const r = await simulateDeadlock(pool, { table: t, key: 'id', rows: [2, 3], captureReport: false });
    const ours = (d: DeadlockReport) => d.transactions.some((x) => x.threadId === r.threadIds[0]);
    const found = await monitor.pollOnce();
    expect(found && ours(found)).toBe(true);
    await monitor.pollOnce();
    await monitor.pollOnce();
    expect(seen.filter(ours)).toHaveLength(1);
    expect(new Set(seen.map(deadlockKey)).size).toBe(seen.length);
    const stats = monitor.stats();
    expect(stats.totalDeadlocks).toBeGreaterThanOrEqual(1);
    expect(stats.byTable[`test.${t}`]).toBe(1);
    // start/stop: idempotent, and stop waits for the poll in flight.
    monitor.start();
    monitor.start();
    expect(monitor.running).toBe(true);
    await monitor.stop();
    await monitor.stop();
    expect(monitor.running).toBe(false);
  });

  it('two deadlocks between polls: one report (the server keeps only the latest) and missedCount', async () => {
    const monitor = new DeadlockMonitor(pool, { pollIntervalMs: 60_000 });
    const events: { missedCount: number }[] = [];
    monitor.on('deadlock', (e) => events.push(e));
    await monitor.pollOnce();
    await simulateDeadlock(pool, { table: t, key: 'id', rows: [1, 3], captureReport: false });
    await simulateDeadlock(pool, { table: t, key: 'id', rows: [3, 1], captureReport: false });
    await monitor.pollOnce();
    expect(events).toHaveLength(1);
    expect(events[0]?.missedCount).toBeGreaterThanOrEqual(1);
    expect(monitor.stats().totalDeadlocks).toBeGreaterThanOrEqual(2);
  });

  it.skipIf(!noProcessUrl)(
    'without PROCESS: a typed error naming it, and a partial report with errors',
    async () => {
      const np = mysql.createPool({ uri: noProcessUrl, connectionLimit: 2 });
      try {
        const inspector = new LockInspector(np);
        const err = await inspector.currentLockWaits().catch((e) => e);
        expect(err).toBeInstanceOf(InsufficientPrivilegeError);
        expect(err.privilege).toBe('PROCESS');
        expect(err.message).toMatch(/PROCESS/);
        await expect(inspector.latestDeadlock()).rejects.toBeInstanceOf(InsufficientPrivilegeError);
        const report = await inspector.generateReport();
        expect(report.errors.map((e) => e.section)).toEqual([
          'lockWaits',
          'transactions',
          'locks',
          'latestDeadlock',
        ]);
        expect(report.errors.every((e) => e.code === 'E_PRIVILEGE')).toBe(true);
        expect(report.server?.flavor).toBe('mariadb');
      } finally {
        await np.end();
      }
    },
  );
});
