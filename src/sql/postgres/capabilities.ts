import { ANOMALIES, type Anomaly, type Capabilities, type IsolationLevel } from '../../core/resource.js';

const READ_COMMITTED = Object.freeze({
  effective: 'read committed' as const,
  prevents: Object.freeze(['dirty_read'] as Anomaly[]),
});

/**
 * What each level really prevents on PostgreSQL (verified by test/postgres/concurrency.test.ts).
 * REPEATABLE READ is snapshot isolation: a concurrent update of a row it read fails with 40001
 * (no lost update), phantoms are not seen, but write skew is possible.
 */
export const POSTGRES_CAPABILITIES: Capabilities = Object.freeze({
  isolation: Object.freeze({
    'read uncommitted': READ_COMMITTED,
    'read committed': READ_COMMITTED,
    'repeatable read': Object.freeze({
      effective: 'repeatable read' as const,
      prevents: Object.freeze(ANOMALIES.filter((a) => a !== 'write_skew')),
    }),
    serializable: Object.freeze({
      effective: 'serializable' as const,
      prevents: Object.freeze([...ANOMALIES]),
    }),
  }),
  defaultIsolation: 'read committed',
  savepoints: true,
  readOnly: true,
  deferrable: true,
  twoPhase: true,
  concurrentTransactions: true,
  statementErrorAbortsTransaction: true,
});

const LEVEL_SQL: Record<IsolationLevel, string> = {
  'read uncommitted': 'READ COMMITTED', // PostgreSQL runs it as READ COMMITTED anyway; say what it is
  'read committed': 'READ COMMITTED',
  'repeatable read': 'REPEATABLE READ',
  serializable: 'SERIALIZABLE',
};

/** Builds the one BEGIN statement for a request. */
export function beginSql(
  isolation: IsolationLevel | undefined,
  readOnly: boolean,
  deferrable: boolean,
): string {
  let sql = 'BEGIN';
  if (isolation !== undefined) sql += ` ISOLATION LEVEL ${LEVEL_SQL[isolation]}`;
  if (readOnly) sql += ' READ ONLY';
  if (deferrable) sql += ' DEFERRABLE';
  return sql;
}
