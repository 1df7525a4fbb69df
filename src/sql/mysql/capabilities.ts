/**
 * What InnoDB's isolation levels really prevent, and the SQL names of the levels.
 */
import {
  ANOMALIES,
  type Anomaly,
  type Capabilities,
  type IsolationCapability,
  type IsolationLevel,
} from '../../core/resource.js';

/**
 * What InnoDB really prevents per level. Repeatable read reads from a snapshot but lets
 * read-modify-write lose updates and allows write skew, unless MariaDB's
 * `innodb_snapshot_isolation` is on (then a stale write fails with 1020 instead).
 * Serializable turns plain reads into shared-lock reads: conflicts block or deadlock.
 */
export function mysqlCapabilities(snapshotIsolation: boolean): Capabilities {
  const cap = (effective: IsolationLevel, prevents: readonly Anomaly[]): IsolationCapability =>
    Object.freeze({ effective, prevents: Object.freeze([...prevents]) });
  const rr: Anomaly[] = ['dirty_read', 'non_repeatable_read', 'phantom_read', 'read_skew'];
  if (snapshotIsolation) rr.push('lost_update');
  return Object.freeze({
    isolation: Object.freeze({
      'read uncommitted': cap('read uncommitted', []),
      'read committed': cap('read committed', ['dirty_read']),
      'repeatable read': cap('repeatable read', rr),
      serializable: cap('serializable', ANOMALIES),
    }),
    defaultIsolation: 'repeatable read',
    savepoints: true,
    readOnly: true,
    deferrable: false,
    twoPhase: true,
    concurrentTransactions: true,
    statementErrorAbortsTransaction: false,
  });
}

export const LEVEL_SQL: Record<IsolationLevel, string> = {
  'read uncommitted': 'READ UNCOMMITTED',
  'read committed': 'READ COMMITTED',
  'repeatable read': 'REPEATABLE READ',
  serializable: 'SERIALIZABLE',
};

export function levelFromServer(v: unknown): IsolationLevel {
  const s = String(v ?? '')
    .toLowerCase()
    .replace(/[-_]/g, ' ');
  return (Object.keys(LEVEL_SQL) as IsolationLevel[]).find((l) => l === s) ?? 'repeatable read';
}
