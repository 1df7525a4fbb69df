/**
 * The MySQL Database: the engine on a MysqlResource, plus the server's own tools
 * (flavour, lock settings, lock inspector, deadlock monitor).
 */
import type mysql2 from 'mysql2/promise';
import { Database } from '../../core/database.js';
import type { MysqlResource } from './adapter.js';
import { DeadlockMonitor, type DeadlockMonitorOptions } from './deadlock-monitor.js';
import { LockInspector } from './lock-inspector.js';
import type { ServerInfo } from './server-info.js';
import type { MysqlTransaction } from './transaction.js';

export interface LockSettings {
  innodbLockWaitTimeout: number;
  innodbRollbackOnTimeout: boolean;
  innodbDeadlockDetect: boolean;
  innodbPrintAllDeadlocks: boolean;
  /** MariaDB only: `off`, `basic` or `full`. */
  innodbDeadlockReport?: string;
  /** MariaDB only. */
  innodbSnapshotIsolation?: boolean;
  isolation: string;
}

export class MysqlDatabase extends Database<MysqlResource, MysqlTransaction> {
  /** The mysql2 pool underneath (for tools; run transactions through `transaction()`). */
  get pool(): mysql2.Pool {
    return this.resource.pool;
  }

  /** Server flavour and version (`SELECT VERSION(), @@version_comment`, read once). */
  async serverInfo(): Promise<ServerInfo> {
    return (await this.resource.facts()).info;
  }

  /** The server's lock settings: they decide what a 1205 left behind, and how deadlocks are reported. */
  async serverLockSettings(): Promise<LockSettings> {
    const facts = await this.resource.facts();
    const [rows] = (await this.pool.query(
      "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('innodb_lock_wait_timeout','innodb_rollback_on_timeout'," +
        "'innodb_deadlock_detect','innodb_print_all_deadlocks','innodb_deadlock_report','innodb_snapshot_isolation')",
    )) as unknown as [Array<{ Variable_name: string; Value: string }>];
    const v = new Map(rows.map((r) => [r.Variable_name, r.Value]));
    const on = (name: string) => /^(ON|1)$/i.test(v.get(name) ?? '');
    const out: LockSettings = {
      innodbLockWaitTimeout: Number(v.get('innodb_lock_wait_timeout')),
      innodbRollbackOnTimeout: on('innodb_rollback_on_timeout'),
      innodbDeadlockDetect: on('innodb_deadlock_detect'),
      innodbPrintAllDeadlocks: on('innodb_print_all_deadlocks'),
      isolation: facts.defaultIsolation,
    };
    if (v.has('innodb_deadlock_report')) out.innodbDeadlockReport = String(v.get('innodb_deadlock_report'));
    if (v.has('innodb_snapshot_isolation')) out.innodbSnapshotIsolation = on('innodb_snapshot_isolation');
    return out;
  }

  /** Read-only lock diagnostics (needs PROCESS). */
  inspector(): LockInspector {
    return new LockInspector(this.pool);
  }

  /** A deadlock monitor on this database's pool; call `start()` on it. */
  deadlockMonitor(options?: DeadlockMonitorOptions): DeadlockMonitor {
    return new DeadlockMonitor(this.pool, options);
  }
}
