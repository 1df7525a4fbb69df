#!/usr/bin/env node
/**
 * The `txkit` command: demo, inspection and repair tools for each area.
 */
import { Command } from 'commander';
import { runDemo } from './demo.js';
import { register as registerSqlite } from './sqlite.js';

const program = new Command();
program.name('txkit').description('correct, fast and visible transactions for Node.js');

program
  .command('demo')
  .description('show what txkit guarantees on an embedded SQLite file (or PostgreSQL / MySQL with a URL)')
  .option('--db <file>', 'SQLite file to use (default: a temporary file)')
  .option('--workers <n>', 'concurrent worker processes', '4')
  .option('--transfers <n>', 'transfers per worker', '750')
  .action(async (opts: { db?: string; workers: string; transfers: string }) => {
    await runDemo({
      ...(opts.db ? { file: opts.db } : {}),
      workers: Number(opts.workers),
      transfersPerWorker: Number(opts.transfers),
      log: (line) => console.log(line),
    });
  });

registerSqlite(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
