/**
 * `txkit pg …`: PostgreSQL inspection and LISTEN/NOTIFY tools.
 *
 *   txkit pg activity [--min-age 30s] [--json]     open transactions and sessions (pg_stat_activity)
 *   txkit pg locks [--waiting] [--json]            locks held and awaited (pg_locks)
 *   txkit pg blocking [--min-age 1s] [--json]      who blocks whom, as chains to the root blocker
 *   txkit pg prepared [--prefix P] [--json]        prepared (two-phase) transactions with their age
 *   txkit pg prepared commit|rollback <gid> --force  operator override (bypasses any decision log)
 *   txkit pg queue                                  NOTIFY queue usage (exit 1 above 50%)
 *   txkit pg listen <channel...> [--json] [--count N]  print notifications until Ctrl-C (or N)
 *   txkit pg notify <channel> <payload|@file>       send one notification
 *
 * The server is `--url`, else `TXKIT_PG_URL`, else `DATABASE_URL`. Credentials are never printed.
 * Exit codes: 0 nothing found, 1 findings (blocked sessions, awaited locks, prepared
 * transactions, a queue above 50%), 2 error.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { InvalidOptionError } from '../core/errors.js';
import { postgres } from '../sql/postgres/index.js';
import { PgNotifier } from '../sql/postgres/notify.js';

export const EXIT = { ok: 0, findings: 1, error: 2 } as const;

/** Parses `500ms`, `30s`, `2m`, `1h` or a bare number of milliseconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m)
    throw new InvalidOptionError(`invalid duration ${JSON.stringify(text)}: use e.g. 500ms, 30s, 2m, 1h`);
  const n = Number(m[1]);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 'ms') as 'ms'];
  return Math.round(n * unit);
}

/** The URL with any password replaced, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparsable URL)';
  }
}

function urlOf(opts: { url?: string }): string {
  const url = opts.url ?? process.env.TXKIT_PG_URL ?? process.env.DATABASE_URL;
  if (!url) throw new InvalidOptionError('no server given: pass --url or set TXKIT_PG_URL / DATABASE_URL');
  return url;
}

function fmtMs(ms: number | null): string {
  if (ms === null) return '-';
  if (ms < 1000) return `${ms}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  return `${(ms / 60_000).toFixed(1)}m`;
}

function table(rows: Record<string, unknown>[], out: (l: string) => void): void {
  if (rows.length === 0) {
    out('(none)');
    return;
  }
  const cols = Object.keys(rows[0]!);
  const cell = (v: unknown) =>
    v instanceof Date ? v.toISOString() : v === null || v === undefined ? '-' : String(v);
  const widths = cols.map((c) => Math.min(60, Math.max(c.length, ...rows.map((r) => cell(r[c]).length))));
  out(cols.map((c, i) => c.padEnd(widths[i]!)).join('  '));
  for (const r of rows) out(cols.map((c, i) => cell(r[c]).slice(0, 60).padEnd(widths[i]!)).join('  '));
}

async function withDb<T>(
  opts: { url?: string },
  fn: (db: ReturnType<typeof postgres>) => Promise<T>,
): Promise<T> {
  const db = postgres({ connectionString: urlOf(opts), max: 2, acquireTimeoutMs: 10_000 });
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

function run(action: () => Promise<number>): () => Promise<void> {
  return async () => {
    try {
      process.exitCode = await action();
    } catch (err) {
      process.stderr.write(`txkit pg: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = EXIT.error;
    }
  };
}

const out = (l: string): void => {
  process.stdout.write(`${l}\n`);
};

export function register(program: Command): void {
  const pg = program.command('pg').description('PostgreSQL inspection and LISTEN/NOTIFY tools');
  const withUrl = (c: Command) => c.option('--url <url>', 'server (default: TXKIT_PG_URL or DATABASE_URL)');

  withUrl(pg.command('activity'))
    .description('sessions and their open transactions (pg_stat_activity)')
    .option('--min-age <duration>', 'only transactions open at least this long (e.g. 30s)')
    .option('--json', 'print JSON')
    .action((opts: { url?: string; minAge?: string; json?: boolean }) =>
      run(() =>
        withDb(opts, async (db) => {
          const rows = await db
            .monitor()
            .activity(opts.minAge === undefined ? {} : { minXactAgeMs: parseDuration(opts.minAge) });
          if (opts.json) out(JSON.stringify(rows, null, 2));
          else
            table(
              rows.map((r) => ({
                pid: r.pid,
                state: r.state,
                xact_age: fmtMs(r.xactAgeMs),
                wait: r.waitEvent,
                query: r.query,
              })),
              out,
            );
          return EXIT.ok;
        }),
      )(),
    );

  withUrl(pg.command('locks'))
    .description('locks held and awaited (pg_locks joined with pg_stat_activity)')
    .option('--waiting', 'only locks being waited for')
    .option('--json', 'print JSON')
    .action((opts: { url?: string; waiting?: boolean; json?: boolean }) =>
      run(() =>
        withDb(opts, async (db) => {
          const rows = await db.monitor().locks({ waitingOnly: opts.waiting === true });
          if (opts.json) out(JSON.stringify(rows, null, 2));
          else
            table(
              rows.map((r) => ({
                pid: r.pid,
                lock: r.locktype,
                mode: r.mode,
                granted: r.granted,
                relation: r.relation,
                waiting: fmtMs(r.waitingMs),
              })),
              out,
            );
          return rows.some((r) => !r.granted) ? EXIT.findings : EXIT.ok;
        }),
      )(),
    );

  withUrl(pg.command('blocking'))
    .description('blocked sessions and the chain of blockers up to the root (pg_blocking_pids)')
    .option('--min-age <duration>', 'only waits at least this long')
    .option('--json', 'print JSON')
    .action((opts: { url?: string; minAge?: string; json?: boolean }) =>
      run(() =>
        withDb(opts, async (db) => {
          const chains = await db
            .monitor()
            .blockingChains(opts.minAge === undefined ? {} : { minWaitMs: parseDuration(opts.minAge) });
          if (opts.json) out(JSON.stringify(chains, null, 2));
          else if (chains.length === 0) out('no blocked sessions');
          else
            for (const c of chains) {
              out(
                `${c.chain.join(' → ')}${c.cycle ? '  (cycle)' : ''}  waiting ${fmtMs(c.waitingMs)}, root blocker ${c.root}`,
              );
            }
          return chains.length > 0 ? EXIT.findings : EXIT.ok;
        }),
      )(),
    );

  const prepared = withUrl(pg.command('prepared'))
    .description('prepared (two-phase) transactions of this database, oldest first')
    .option('--prefix <prefix>', 'only GIDs starting with this')
    .option('--json', 'print JSON')
    .action((opts: { url?: string; prefix?: string; json?: boolean }) =>
      run(() =>
        withDb(opts, async (db) => {
          const rows = await db.listPrepared(opts.prefix);
          if (opts.json) out(JSON.stringify(rows, null, 2));
          else
            table(
              rows.map((r) => ({
                gid: r.gid,
                age: fmtMs(r.ageMs ?? null),
                owner: r.owner,
                database: r.database,
              })),
              out,
            );
          return rows.length > 0 ? EXIT.findings : EXIT.ok;
        }),
      )(),
    );
  for (const verb of ['commit', 'rollback'] as const) {
    withUrl(prepared.command(`${verb} <gid>`))
      .description(`${verb.toUpperCase()} PREPARED one transaction (operator override; needs --force)`)
      .option('--force', 'confirm: this bypasses the coordinator decision log')
      .action((gid: string, _opts: unknown, cmd: Command) =>
        run(async () => {
          // --url may be parsed by the parent `prepared` command: read both levels
          const opts = cmd.optsWithGlobals() as { url?: string; force?: boolean };
          if (!opts.force) {
            process.stderr.write(
              `refusing to ${verb} '${gid}' without --force: only a decision log knows its outcome\n`,
            );
            return EXIT.error;
          }
          process.stderr.write(
            `warning: ${verb} of a prepared transaction without its coordinator's decision log can leave a ` +
              'distributed transaction half committed\n',
          );
          return withDb(opts, async (db) => {
            if (verb === 'commit') await db.commitPrepared(gid);
            else if (!(await db.rollbackPrepared(gid))) {
              out(`no prepared transaction '${gid}' (nothing to roll back)`);
              return EXIT.ok;
            }
            out(`${verb} prepared '${gid}': done`);
            return EXIT.ok;
          });
        })(),
      );
  }

  withUrl(pg.command('queue'))
    .description('server-wide NOTIFY queue usage (near 100%, NOTIFY fails at COMMIT)')
    .action((opts: { url?: string }) =>
      run(() =>
        withDb(opts, async (db) => {
          const usage = await db.monitor().notificationQueueUsage();
          out(`notification queue usage: ${(usage * 100).toFixed(4)}%`);
          return usage > 0.5 ? EXIT.findings : EXIT.ok;
        }),
      )(),
    );

  withUrl(pg.command('listen <channels...>'))
    .description('print notifications on the channels until interrupted (reconnects on its own)')
    .option('--json', 'one JSON object per line')
    .option('--count <n>', 'exit after this many notifications')
    .action((channels: string[], opts: { url?: string; json?: boolean; count?: string }) =>
      run(async () => {
        let left = Number.POSITIVE_INFINITY;
        if (opts.count !== undefined) {
          left = Number(opts.count);
          if (!Number.isInteger(left) || left < 1) {
            throw new InvalidOptionError(`--count must be an integer >= 1, got ${opts.count}`);
          }
        }
        const notifier = new PgNotifier({ connectionString: urlOf(opts) });
        // A failed LISTEN (a bad channel name, a lost server) ends the command with an error.
        const done = new Promise<void>((resolve, reject) => {
          process.once('SIGINT', resolve);
          for (const ch of channels) {
            notifier
              .listen(ch, (n) => {
                out(opts.json ? JSON.stringify(n) : `${n.channel}\t${n.processId}\t${n.payload}`);
                if (--left <= 0) resolve();
              })
              .catch(reject);
          }
          notifier.on('reconnect', () =>
            process.stderr.write('reconnected (notifications meanwhile are lost)\n'),
          );
        });
        done.catch(() => {}); // awaited below; a failure before that must not go unhandled
        try {
          await notifier.connect();
          process.stderr.write(`listening on ${channels.join(', ')} at ${redactUrl(urlOf(opts))}\n`);
          await done;
        } finally {
          await notifier.close();
        }
        return EXIT.ok;
      })(),
    );

  withUrl(pg.command('notify <channel> <payload>'))
    .description('send one notification; a payload of @file reads the file')
    .action((channel: string, payload: string, opts: { url?: string }) =>
      run(() =>
        withDb(opts, async (db) => {
          const text = payload.startsWith('@') ? readFileSync(payload.slice(1), 'utf8') : payload;
          await db.notify(channel, text);
          return EXIT.ok;
        }),
      )(),
    );
}
