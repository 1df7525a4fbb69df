/**
 * `txkit mysql …`: deadlock and lock diagnostics for MySQL / MariaDB.
 *
 *   txkit mysql deadlocks [--url U] [--json]          latest deadlock (SHOW ENGINE INNODB STATUS)
 *   txkit mysql deadlocks --parse <file|->  [--json]  offline: status dumps or error-log excerpts
 *   txkit mysql locks [--url U] [--long-wait 10] [--long-trx 30] [--json]
 *
 * Exit codes: 0 nothing found, 1 findings (a deadlock, waits, risks), 2 error,
 * 3 missing privilege (PROCESS).
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import mysql from 'mysql2/promise';
import { formatDeadlock } from '../sql/mysql/deadlock-format.js';
import type { DeadlockReport } from '../sql/mysql/deadlock-parser.js';
import { parseDeadlocks } from '../sql/mysql/deadlock-parser.js';
import { InsufficientPrivilegeError } from '../sql/mysql/errors.js';
import { LockInspector, type LockReport } from '../sql/mysql/lock-inspector.js';

export { formatDeadlock };

export const EXIT = { ok: 0, findings: 1, error: 2, privilege: 3 } as const;

interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
}

const stdio: Io = {
  out: (l) => process.stdout.write(`${l}\n`),
  err: (l) => process.stderr.write(`${l}\n`),
};

/** Human-readable lines for a lock report. */
export function formatLockReport(r: LockReport): string[] {
  const s = r.summary;
  const lines = [
    `${r.server ? `${r.server.flavor} ${r.server.version}: ` : ''}${s.totalLockWaits} lock waits, ` +
      `${s.activeTransactions} transactions, ${s.totalLocks} locks listed, ${s.deadlockRisks} risks`,
  ];
  for (const w of r.currentLocks) {
    lines.push(
      `  thread ${w.waitingThreadId} (trx ${w.waitingTrxId}) waits ${w.waitAgeSec}s for thread ${w.blockingThreadId}` +
        ` (trx ${w.blockingTrxId})${w.requestedLock ? ` on ${w.requestedLock.table} ${w.requestedLock.data ?? ''}` : ''}`,
    );
  }
  for (const risk of r.potentialRisks.deadlockRisks) lines.push(`  [${risk.severity}] ${risk.description}`);
  for (const t of r.potentialRisks.longRunningTransactions) {
    lines.push(`  long-running: trx ${t.trxId} thread ${t.threadId} open ${t.ageSec}s`);
  }
  for (const rec of r.recommendations) lines.push(`  → (${rec.priority}) ${rec.recommendation}`);
  for (const e of r.errors) lines.push(`  ! ${e.section}: ${e.message}`);
  return lines;
}

function url(opt: string | undefined): string {
  const u = opt ?? process.env.TXKIT_MYSQL_URL;
  if (!u) throw new Error('no server: pass --url mysql://user:pass@host:port/db or set TXKIT_MYSQL_URL');
  return u;
}

function failure(err: unknown, io: Io): number {
  io.err(`error: ${err instanceof Error ? err.message : String(err)}`);
  return err instanceof InsufficientPrivilegeError ? EXIT.privilege : EXIT.error;
}

/** `txkit mysql deadlocks`; returns the exit code. */
export async function deadlocksCommand(
  opts: { url?: string; parse?: string; json?: boolean },
  io: Io = stdio,
): Promise<number> {
  try {
    let reports: DeadlockReport[];
    if (opts.parse !== undefined) {
      const text = readFileSync(opts.parse === '-' ? 0 : opts.parse, 'utf8');
      reports = parseDeadlocks(text);
    } else {
      const pool = mysql.createPool({ uri: url(opts.url), connectionLimit: 1 });
      try {
        const latest = await new LockInspector(pool).latestDeadlock();
        reports = latest ? [latest] : [];
      } finally {
        await pool.end();
      }
    }
    if (opts.json)
      io.out(
        JSON.stringify(
          reports.map(({ raw: _raw, ...rest }) => rest),
          null,
          2,
        ),
      );
    else if (reports.length === 0) io.out('no deadlock found');
    else for (const r of reports) for (const l of formatDeadlock(r)) io.out(l);
    return reports.length > 0 ? EXIT.findings : EXIT.ok;
  } catch (err) {
    return failure(err, io);
  }
}

/** `txkit mysql locks`; returns the exit code. */
export async function locksCommand(
  opts: { url?: string; longWait?: number; longTrx?: number; json?: boolean },
  io: Io = stdio,
): Promise<number> {
  try {
    const pool = mysql.createPool({ uri: url(opts.url), connectionLimit: 1 });
    let report: LockReport;
    try {
      report = await new LockInspector(pool).generateReport({
        ...(opts.longWait !== undefined ? { longWaitSec: opts.longWait } : {}),
        ...(opts.longTrx !== undefined ? { longTrxSec: opts.longTrx } : {}),
      });
    } finally {
      await pool.end();
    }
    if (opts.json) io.out(JSON.stringify(report, null, 2));
    else for (const l of formatLockReport(report)) io.out(l);
    if (report.errors.some((e) => e.code === 'E_PRIVILEGE')) return EXIT.privilege;
    return report.summary.totalLockWaits > 0 || report.summary.deadlockRisks > 0 ? EXIT.findings : EXIT.ok;
  } catch (err) {
    return failure(err, io);
  }
}

function seconds(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`expected a number of seconds >= 0, got ${v}`);
  return n;
}

/** Adds `txkit mysql deadlocks|locks` to the program. */
export function register(program: Command): void {
  const cmd = program.command('mysql').description('MySQL / MariaDB diagnostics: deadlocks and lock waits');
  cmd
    .command('deadlocks')
    .description('show the latest deadlock, or parse a status dump / error-log excerpt')
    .option('--url <url>', 'server URL (default: $TXKIT_MYSQL_URL)')
    .option('--parse <file>', "parse a file ('-' for stdin) instead of asking a server")
    .option('--json', 'JSON output')
    .action(async (o: { url?: string; parse?: string; json?: boolean }) => {
      process.exitCode = await deadlocksCommand(o);
    });
  cmd
    .command('locks')
    .description('current lock waits, wait chains, cycles and long transactions')
    .option('--url <url>', 'server URL (default: $TXKIT_MYSQL_URL)')
    .option('--long-wait <sec>', 'a wait this old is a risk', seconds, 10)
    .option('--long-trx <sec>', 'a transaction this old is long-running', seconds, 30)
    .option('--json', 'JSON output')
    .action(async (o: { url?: string; longWait?: number; longTrx?: number; json?: boolean }) => {
      process.exitCode = await locksCommand(o);
    });
}
