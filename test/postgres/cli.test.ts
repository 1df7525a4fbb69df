/**
 * `txkit pg …` commands, run in-process against the real server.
 */
import { Command } from 'commander';
import type pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { parseDuration, redactUrl, register } from '../../src/cli/pg.js';
import { prepareTransaction, rollbackPrepared } from '../../src/sql/postgres/prepared.js';
import { connect, createTestDatabase, PG_URL, type TestDatabase } from './helpers.js';

describe('pg CLI helpers', () => {
  it('parses durations and says what is allowed', () => {
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('2m')).toBe(120_000);
    expect(parseDuration('250')).toBe(250);
    expect(() => parseDuration('soon')).toThrow(/500ms, 30s, 2m, 1h/);
  });
  it('never prints a password', () => {
    expect(redactUrl('postgres://app:hunter2@db:5432/x')).toBe('postgres://app:***@db:5432/x');
  });
});

describe.skipIf(!PG_URL)('txkit pg (real server)', () => {
  let tdb: TestDatabase;
  let c: pg.Client;
  let lines: string[];
  beforeAll(async () => {
    tdb = await createTestDatabase('cli');
    c = await connect(tdb.url);
  });
  afterEach(() => {
    vi.restoreAllMocks();
    process.exitCode = 0;
  });
  afterAll(async () => {
    await c?.end();
    await tdb?.drop();
  });

  const cli = async (...args: string[]): Promise<number> => {
    lines = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => {
      lines.push(...String(s).split('\n').filter(Boolean));
      return true;
    });
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const program = new Command().exitOverride();
    register(program);
    process.exitCode = 0;
    await program.parseAsync(['node', 'txkit', 'pg', ...args, '--url', tdb.url]);
    vi.restoreAllMocks();
    return Number(process.exitCode ?? 0);
  };

  it('lists prepared transactions (exit 1 while any remain) and refuses overrides without --force', async () => {
    expect(await cli('prepared')).toBe(0);
    expect(lines).toEqual(['(none)']);
    await c.query('BEGIN');
    await c.query('SELECT 1');
    await prepareTransaction(c, 'cli:1');
    try {
      expect(await cli('prepared', '--json')).toBe(1);
      expect(JSON.parse(lines.join('\n'))[0].gid).toBe('cli:1');
      expect(await cli('prepared', 'rollback', 'cli:1')).toBe(2);
      expect(await cli('prepared', 'rollback', 'cli:1', '--force')).toBe(0);
      expect(await cli('prepared')).toBe(0);
    } finally {
      await rollbackPrepared(c, 'cli:1');
    }
  });

  it('blocking, activity, locks and queue report', async () => {
    expect(await cli('blocking')).toBe(0);
    expect(lines).toEqual(['no blocked sessions']);
    expect(await cli('activity', '--min-age', '1h')).toBe(0);
    expect(await cli('locks', '--waiting', '--json')).toBe(0);
    expect(JSON.parse(lines.join('\n'))).toEqual([]);
    expect(await cli('queue')).toBe(0);
    expect(lines[0]).toMatch(/^notification queue usage: \d/);
  });

  it('notify sends through quoted channels; a bad channel is an error (exit 2)', async () => {
    await c.query('LISTEN "cli_ch"');
    const got = new Promise<string>((resolve) => c.once('notification', (n) => resolve(n.payload ?? '')));
    expect(await cli('notify', 'cli_ch', 'hello')).toBe(0);
    expect(await got).toBe('hello');
    expect(await cli('notify', 'bad"; --', 'x')).toBe(2);
  });

  it('listen prints notifications up to --count; a bad channel or count is an error (exit 2)', async () => {
    const listening = cli('listen', 'cli_listen', '--count', '1');
    await new Promise<void>((resolve) => {
      const poll = async () => {
        const r = await c.query(
          // the listener's LISTEN has completed (its session is idle again), so it is in effect
          "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%cli_listen%' AND state = 'idle'",
        );
        if (r.rowCount) resolve();
        else setTimeout(poll, 20);
      };
      void poll();
    });
    await c.query("SELECT pg_notify('cli_listen', 'one')");
    expect(await listening).toBe(0);
    expect(lines.at(-1)).toMatch(/^cli_listen\t\d+\tone$/);
    expect(await cli('listen', 'bad"; --')).toBe(2);
    expect(await cli('listen', 'cli_listen', '--count', 'abc')).toBe(2);
  });
});
