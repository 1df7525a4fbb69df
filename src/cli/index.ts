#!/usr/bin/env node
/**
 * The `txkit` command: the demo, and inspection and repair tools for each area.
 * Each area's commands load only when its driver is installed (drivers are optional).
 */
import { Command } from 'commander';

const program = new Command();
program.name('txkit').description('correct, fast and visible transactions for Node.js');

const isMissingModule = (err: unknown) => (err as { code?: string } | null)?.code === 'ERR_MODULE_NOT_FOUND';

program
  .command('demo')
  .description('show what txkit guarantees on an embedded SQLite file (or on PostgreSQL / MySQL with a URL)')
  .option('--db <file>', 'SQLite file to use (default: a temporary file)')
  .option('--workers <n>', 'concurrent worker processes', '4')
  .option('--transfers <n>', 'transfers per worker', '750')
  .option('--pg <url>', 'run the scenarios on PostgreSQL instead')
  .option('--mysql <url>', 'run the scenarios on MySQL / MariaDB instead')
  .action(async (opts: { db?: string; workers: string; transfers: string; pg?: string; mysql?: string }) => {
    if (opts.pg) {
      const { runPgDemo } = await import('../sql/postgres/demo.js');
      for (const line of await runPgDemo(opts.pg)) console.log(line);
      return;
    }
    if (opts.mysql) {
      const { runMysqlDemo } = await import('../sql/mysql/demo.js');
      for (const line of await runMysqlDemo(opts.mysql)) console.log(line);
      return;
    }
    const { runDemo } = await import('./demo.js');
    await runDemo({
      ...(opts.db ? { file: opts.db } : {}),
      workers: Number(opts.workers),
      transfersPerWorker: Number(opts.transfers),
      log: (line) => console.log(line),
    });
  });

const groups: [name: string, driver: string, load: () => Promise<{ register(p: Command): void }>][] = [
  ['sqlite', 'better-sqlite3', () => import('./sqlite.js')],
  ['pg', 'pg', () => import('./pg.js')],
  ['mysql', 'mysql2', () => import('./mysql.js')],
  ['redis', 'ioredis', () => import('./redis.js')],
  ['fs', '', () => import('./fs.js')],
];
for (const [name, driver, load] of groups) {
  try {
    (await load()).register(program);
  } catch (err) {
    if (!isMissingModule(err)) throw err;
    program
      .command(name)
      .description(`(needs the optional ${driver} package)`)
      .action(() => {
        console.error(`txkit ${name} needs the ${driver} package: npm install ${driver}`);
        process.exit(2);
      });
  }
}

program.parseAsync(process.argv).catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
