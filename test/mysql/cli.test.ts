import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { deadlocksCommand, EXIT, locksCommand, register } from '../../src/cli/mysql.js';
import { accountsTable, connect, noProcessUrl, tableName, url, waitForLockWait } from './helpers.js';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) }, out, err };
}

const fixture = (f: string) => fileURLToPath(new URL(`./fixtures/${f}`, import.meta.url));
const errorLog = fixture('mariadb-10.11-errorlog-deadlocks-full-and-basic.txt');

describe('txkit mysql deadlocks --parse', () => {
  it('prints each deadlock of a MySQL 8 dump and exits 1 (findings)', async () => {
    const c = capture();
    expect(await deadlocksCommand({ parse: fixture('mysql-8.0-deadlock-section.txt') }, c.io)).toBe(
      EXIT.findings,
    );
    expect(c.out[0]).toMatch(/2 transactions \(mysql\)/);
    expect(c.out.join('\n')).toMatch(/\(2\) trx 9002 thread 32 .*← rolled back/);
    expect(c.out.join('\n')).toMatch(/waits for X record lock zoo\.Animals\.PRIMARY on Aardvark/);
  });

  it('JSON for an error log with three dumps', async () => {
    const c = capture();
    expect(await deadlocksCommand({ parse: errorLog, json: true }, c.io)).toBe(EXIT.findings);
    const parsed = JSON.parse(c.out.join('\n'));
    expect(parsed.map((d: { victimIndex: number }) => d.victimIndex)).toEqual([3, 3, 2]);
  });

  it('errors: missing file → 2, no server URL → 2 with a message saying what to pass', async () => {
    const c = capture();
    expect(await deadlocksCommand({ parse: '/nonexistent/file' }, c.io)).toBe(EXIT.error);
    const saved = process.env.TXKIT_MYSQL_URL;
    delete process.env.TXKIT_MYSQL_URL;
    try {
      const d = capture();
      expect(await locksCommand({}, d.io)).toBe(EXIT.error);
      expect(d.err[0]).toMatch(/--url/);
    } finally {
      if (saved !== undefined) process.env.TXKIT_MYSQL_URL = saved;
    }
  });

  it('registers mysql deadlocks|locks on a commander program', () => {
    const program = new Command();
    register(program);
    const mysqlCmd = program.commands.find((c) => c.name() === 'mysql');
    expect(mysqlCmd?.commands.map((c) => c.name())).toEqual(['deadlocks', 'locks']);
  });
});

describe.skipIf(!url)('txkit mysql locks on the real server', () => {
  it('shows a live wait (exit 1), and exit 3 without PROCESS', async () => {
    const a = await connect();
    const b = await connect();
    const t = tableName('cli');
    await accountsTable(a, t, 1);
    try {
      await a.query('START TRANSACTION');
      await a.query(`UPDATE \`${t}\` SET v = 1 WHERE id = 1`);
      await b.query('START TRANSACTION');
      const blocked = b.query(`UPDATE \`${t}\` SET v = 2 WHERE id = 1`).catch((e) => e);
      await waitForLockWait(a, b.threadId);
      let code: number = EXIT.ok;
      let lines: string[] = [];
      // The I_S lock tables are a server-wide cache refreshed after 100 ms without reads; other
      // test files polling the same server can keep it stale for a while: look again until
      // a deadline rather than a fixed number of times. Another file's lock wait also exits 1,
      // so look for this one.
      const ours = new RegExp(`thread ${b.threadId} \\(trx \\d+\\) waits \\d+s for thread ${a.threadId}`);
      const until = performance.now() + 40_000; // below innodb_lock_wait_timeout (50 s)
      for (let i = 0; performance.now() < until && !ours.test(lines.join('\n')); i++) {
        if (i > 0) await new Promise((r) => setTimeout(r, 150));
        const c = capture();
        code = await locksCommand({ url }, c.io);
        lines = c.out;
      }
      expect(code).toBe(EXIT.findings);
      expect(lines.join('\n')).toMatch(ours);
      if (noProcessUrl) {
        const np = capture();
        expect(await locksCommand({ url: noProcessUrl }, np.io)).toBe(EXIT.privilege);
        expect(np.out.join('\n')).toMatch(/PROCESS/);
        expect(await deadlocksCommand({ url: noProcessUrl }, np.io)).toBe(EXIT.privilege);
      }
      await a.query('ROLLBACK');
      await blocked;
      await b.query('ROLLBACK');
    } finally {
      // After a failed expectation: end both transactions first, or DROP waits for b's lock.
      await a.query('ROLLBACK');
      await b.query('ROLLBACK');
      await a.query(`DROP TABLE IF EXISTS \`${t}\``);
      await a.end();
      await b.end();
    }
  }, 90_000);
});
