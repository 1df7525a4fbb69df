/**
 * `txkit sqlite inspect <file>`: the settings and health of a SQLite database file.
 */
import type { Command } from 'commander';
import { sqlite } from '../sql/sqlite/index.js';

export function register(program: Command): void {
  const cmd = program.command('sqlite').description('SQLite tools');
  cmd
    .command('inspect <file>')
    .description('print journal mode, synchronous, foreign keys, busy timeout, WAL checkpoint and integrity')
    .option('--json', 'print JSON')
    .action(async (file: string, opts: { json?: boolean }) => {
      const db = sqlite({ filename: file, fileMustExist: true });
      try {
        const one = async (sql: string) => Object.values((await db.query(sql))[0] ?? {})[0];
        const report = {
          journalMode: await one('PRAGMA journal_mode'),
          synchronous: await one('PRAGMA synchronous'),
          foreignKeys: await one('PRAGMA foreign_keys'),
          busyTimeout: await one('PRAGMA busy_timeout'),
          pageSize: await one('PRAGMA page_size'),
          pageCount: await one('PRAGMA page_count'),
          userVersion: await one('PRAGMA user_version'),
          walCheckpoint: db.effective.journalMode === 'wal' ? await db.checkpoint('PASSIVE') : null,
          integrity: (await db.query<{ integrity_check: string }>('PRAGMA integrity_check')).map(
            (r) => r.integrity_check,
          ),
          foreignKeyViolations: (await db.query('PRAGMA foreign_key_check')).length,
        };
        if (opts.json) console.log(JSON.stringify(report, null, 2));
        else for (const [k, v] of Object.entries(report)) console.log(`${k.padEnd(22)} ${JSON.stringify(v)}`);
      } finally {
        await db.close();
      }
    });
}
