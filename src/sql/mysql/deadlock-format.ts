/** Human-readable lines for a parsed deadlock report (CLI and demo). */
import type { DeadlockReport } from './deadlock-parser.js';

export function formatDeadlock(d: DeadlockReport): string[] {
  const lines = [
    `deadlock at ${d.detectedAt || '(time not shown)'} — ${d.transactions.length} transactions (${d.format})`,
  ];
  for (const t of d.transactions) {
    const victim = d.victimIndex === t.index ? '  ← rolled back' : '';
    lines.push(
      `  (${t.index}) trx ${t.trxId} thread ${t.threadId ?? '?'} ${t.user ? `user ${t.user} ` : ''}` +
        `undo ${t.undoLogEntries}, row locks ${t.rowLocks}${victim}`,
    );
    if (t.query) lines.push(`      ${t.query.split('\n')[0]}`);
    const w = t.waitingFor;
    if (w) {
      const key = w.records?.length ? ` on ${w.records.join(', ')}` : '';
      const by = t.blockedBy.length ? ` held by trx ${t.blockedBy.join(', ')}` : '';
      lines.push(
        `      waits for ${w.mode} ${w.kind.toLowerCase()} lock ${w.table}${w.index ? `.${w.index}` : ''}${key}${by}`,
      );
    }
  }
  if (d.truncated) lines.push('  (report truncated: no victim line)');
  return lines;
}
