/**
 * `txkit fs …`: inspection and repair of txkit/fs state.
 *   txkit fs wal verify <dir>        full CRC scan (exit 3 on corruption)
 *   txkit fs wal dump <dir>          decoded records
 *   txkit fs lock status <path>      holder, mode, heartbeat age, stale? (exit 4 when held)
 *   txkit fs lock break <path>       ends a stale lock (a live one needs --force --yes)
 *   txkit fs recover <root>          finishes / undoes interrupted file transactions
 * Exit codes: 0 ok, 1 failed, 2 usage, 3 corruption, 4 lock held, 5 needs intervention.
 */
import type { Command } from 'commander';
import { fsTransaction } from '../fs/file-tx/manager.js';
import { breakLock, lockStatus } from '../fs/lock-admin.js';
import { readWal, verifyWal } from '../fs/wal/reader.js';
import { type CommandResult, printResult } from './command-result.js';

export const FS_EXIT = Object.freeze({ ok: 0, failed: 1, usage: 2, corrupt: 3, locked: 4, intervention: 5 });

const json = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x), 2);

export async function walVerifyCommand(dir: string, opts: { json?: boolean } = {}): Promise<CommandResult> {
  const r = await verifyWal(dir);
  const exitCode = r.corruption.length ? FS_EXIT.corrupt : FS_EXIT.ok;
  if (opts.json) return { exitCode, lines: [json(r)] };
  const lines = [
    `WAL ${dir}: ${r.segments.length} segment(s), ${r.records} record(s), LSN ${r.firstLsn ?? '-'}..${r.lastLsn ?? '-'}, checkpoint ${r.checkpointLsn ?? 'none'}`,
  ];
  for (const s of r.segments) {
    lines.push(
      `  ${s.name}  ${s.bytes} bytes  ${s.recordCount} records${s.problem ? `  ! ${s.problem.reason} at ${s.problem.offset}` : ''}`,
    );
  }
  if (r.tornTail) {
    lines.push(
      `torn tail: ${r.tornTail.bytes} byte(s) after LSN ${r.tornTail.lsn - 1n} in ${r.tornTail.segment} (${r.tornTail.reason}); the next open truncates it`,
    );
  }
  for (const c of r.corruption)
    lines.push(`CORRUPTION: ${c.segment} offset ${c.offset} (LSN ${c.lsn}): ${c.reason}`);
  if (!r.corruption.length) lines.push('ok');
  return { exitCode, lines };
}

export async function walDumpCommand(
  dir: string,
  opts: { fromLsn?: string; limit?: string; json?: boolean } = {},
): Promise<CommandResult> {
  const lines: string[] = [];
  const limit = opts.limit === undefined ? Number.POSITIVE_INFINITY : Number(opts.limit);
  if (!(limit > 0)) return { exitCode: FS_EXIT.usage, lines: ['--limit must be a positive integer'] };
  if (opts.fromLsn !== undefined && !/^\d+$/.test(opts.fromLsn))
    return { exitCode: FS_EXIT.usage, lines: ['--from-lsn must be a non-negative integer'] };
  let n = 0;
  for await (const r of readWal(dir, { fromLsn: BigInt(opts.fromLsn ?? 0) })) {
    if (n++ >= limit) break;
    const rec = {
      lsn: r.lsn,
      type: r.type,
      key: r.key.toString('utf8'),
      payload: printable(r.payload),
      segment: r.segment,
    };
    lines.push(
      opts.json
        ? JSON.stringify(rec, (_k, x) => (typeof x === 'bigint' ? x.toString() : x))
        : `${r.lsn}\t${r.type}\t${rec.key}\t${rec.payload}`,
    );
  }
  return { exitCode: FS_EXIT.ok, lines };
}

function printable(b: Buffer): string {
  const s = b.toString('utf8');
  return /^[\P{C}\t\n]*$/u.test(s) ? s : `base64:${b.toString('base64')}`;
}

export async function lockStatusCommand(
  path: string,
  opts: { json?: boolean; staleMs?: string } = {},
): Promise<CommandResult> {
  const s = await lockStatus(path, opts.staleMs ? { staleMs: Number(opts.staleMs) } : {});
  const exitCode = s.locked ? FS_EXIT.locked : FS_EXIT.ok;
  if (opts.json) return { exitCode, lines: [json(s)] };
  const lines = [`${s.lockPath}: ${s.locked ? 'HELD' : 'free'}`];
  if (s.exclusive) {
    const o = s.exclusive.owner;
    lines.push(
      `  exclusive epoch ${s.exclusive.epoch} (fencing token): ${o ? `pid ${o.pid} on ${o.hostname}${o.label ? ` (${o.label})` : ''}` : 'unreadable owner'}, heartbeat ${Math.round(s.exclusive.heartbeatAgeMs)} ms ago${s.exclusive.free ? `, free: ${s.exclusive.free}` : ''}`,
    );
  }
  for (const r of s.readers) {
    lines.push(
      `  shared: pid ${r.owner?.pid ?? '?'} on ${r.owner?.hostname ?? '?'}, heartbeat ${Math.round(r.heartbeatAgeMs)} ms ago${r.stale ? `, STALE: ${r.stale}` : ''}`,
    );
  }
  return { exitCode, lines };
}

export async function lockBreakCommand(
  path: string,
  opts: { force?: boolean; yes?: boolean } = {},
): Promise<CommandResult> {
  const s = await lockStatus(path);
  if (s.locked && !opts.force) {
    return {
      exitCode: FS_EXIT.locked,
      lines: [
        `${s.lockPath} is held by a live owner; --force --yes breaks it anyway (the holder sees its lock compromised)`,
      ],
    };
  }
  if (s.locked && !opts.yes) {
    return {
      exitCode: FS_EXIT.usage,
      lines: [`would break the live lock ${s.lockPath}; add --yes to do it`],
    };
  }
  const r = await breakLock(path, { force: opts.force === true });
  return { exitCode: FS_EXIT.ok, lines: [`${s.lockPath}: ${r.broken} holder(s) ended`] };
}

export async function recoverCommand(
  root: string,
  opts: { dryRun?: boolean; json?: boolean } = {},
): Promise<CommandResult> {
  if (opts.dryRun) {
    const plan = await fsTransaction(root).planRecovery();
    if (opts.json) return { exitCode: FS_EXIT.ok, lines: [json(plan)] };
    return {
      exitCode: FS_EXIT.ok,
      lines: [
        `would finish ${plan.forward.length}, undo ${plan.backward.length}, leave ${plan.prepared.length} prepared (awaiting a decision)`,
      ],
    };
  }
  const r = await fsTransaction(root).recover();
  const exitCode = r.prepared.length ? FS_EXIT.intervention : FS_EXIT.ok;
  if (opts.json) return { exitCode, lines: [json(r)] };
  const lines = [
    `finished ${r.forward.length}, undone ${r.backward.length}, prepared (awaiting a decision) ${r.prepared.length}`,
  ];
  for (const id of r.prepared) lines.push(`  prepared: ${id}`);
  return { exitCode, lines };
}

const run = (command: () => Promise<CommandResult>) => printResult(command, () => FS_EXIT.failed);

/** Adds `txkit fs …` to the program. */
export function register(program: Command): void {
  const fs = program.command('fs').description('filesystem transactions: WAL, locks, recovery');
  const wal = fs.command('wal').description('write-ahead log tools');
  wal
    .command('verify <dir>')
    .description('full CRC scan of a WAL directory; exit 3 on corruption')
    .option('--json', 'print JSON')
    .action((dir: string, o: { json?: boolean }) => run(() => walVerifyCommand(dir, o)));
  wal
    .command('dump <dir>')
    .description('print decoded records (lsn, type, key, payload)')
    .option('--from-lsn <n>', 'first LSN to print')
    .option('--limit <n>', 'at most this many records')
    .option('--json', 'one JSON object per line')
    .action((dir: string, o: { fromLsn?: string; limit?: string; json?: boolean }) =>
      run(() => walDumpCommand(dir, o)),
    );
  const lock = fs.command('lock').description('cross-process lock tools');
  lock
    .command('status <path>')
    .description('holder, mode, heartbeat age and staleness; exit 4 when held')
    .option('--stale-ms <ms>', 'staleness threshold', '10000')
    .option('--json', 'print JSON')
    .action((path: string, o: { json?: boolean; staleMs?: string }) => run(() => lockStatusCommand(path, o)));
  lock
    .command('break <path>')
    .description('end a stale lock; a live one needs --force --yes')
    .option('--force', 'break even a live lock')
    .option('--yes', 'confirm a destructive break')
    .action((path: string, o: { force?: boolean; yes?: boolean }) => run(() => lockBreakCommand(path, o)));
  fs.command('recover <root>')
    .description(
      'finish committed and undo unfinished file transactions under <root>; exit 5 if prepared ones wait',
    )
    .option('--dry-run', 'only say what would be done')
    .option('--json', 'print JSON')
    .action((root: string, o: { dryRun?: boolean; json?: boolean }) => run(() => recoverCommand(root, o)));
}
