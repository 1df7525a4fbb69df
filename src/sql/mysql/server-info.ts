/**
 * Server flavour and version detection, and the small helpers every MySQL-side module
 * uses to run a diagnostic query on a mysql2 pool or connection.
 */
import type { Connection, Pool, PoolConnection, RowDataPacket } from 'mysql2/promise';
import type { MysqlFlavor } from './errors.js';
import { InsufficientPrivilegeError, toTxkitError } from './errors.js';

/** Anything mysql2 can run a query on: a pool, a connection, a pooled connection. */
export type MysqlQueryable = Pool | Connection | PoolConnection;

export interface ServerInfo {
  flavor: MysqlFlavor;
  /** `VERSION()`, e.g. `10.11.19-MariaDB-0+deb12u1` or `8.0.36`. */
  version: string;
  major: number;
  minor: number;
  /** `@@version_comment`, e.g. `Debian 12` or `MySQL Community Server - GPL`. */
  comment: string;
}

/** Runs `sql` and returns its rows as objects; errors come back classified. */
export async function rows<T = Record<string, unknown>>(
  q: MysqlQueryable,
  sql: string,
  params?: unknown[],
  flavor?: MysqlFlavor,
  privilege?: string,
): Promise<T[]> {
  try {
    const [result] = await (q as Connection).query<RowDataPacket[]>(sql, params);
    return result as unknown as T[];
  } catch (err) {
    const e = toTxkitError(err, { flavor, phase: 'autocommit' });
    if (e instanceof InsufficientPrivilegeError && privilege !== undefined) {
      throw new InsufficientPrivilegeError(`this needs the ${privilege} privilege: ${e.message}`, privilege, {
        cause: e.cause,
        ...(e.driverCode !== undefined ? { driverCode: e.driverCode } : {}),
        ...(e.sqlState !== undefined ? { sqlState: e.sqlState } : {}),
      });
    }
    throw e;
  }
}

/** Parses `VERSION()` plus `@@version_comment` into flavour and version numbers. */
export function parseServerVersion(version: string, comment = ''): ServerInfo {
  const m = /^(\d+)\.(\d+)/.exec(version);
  return {
    flavor: /mariadb/i.test(version) || /mariadb/i.test(comment) ? 'mariadb' : 'mysql',
    version,
    major: m ? Number(m[1]) : 0,
    minor: m ? Number(m[2]) : 0,
    comment,
  };
}

/** Asks the server who it is (`SELECT VERSION(), @@version_comment`). */
export async function detectServer(q: MysqlQueryable): Promise<ServerInfo> {
  const [r] = await rows<{ v: string; c: string | null }>(q, 'SELECT VERSION() AS v, @@version_comment AS c');
  return parseServerVersion(String(r?.v ?? ''), String(r?.c ?? ''));
}

/** True when the server is at least `major.minor`. */
export function atLeast(info: ServerInfo, major: number, minor = 0): boolean {
  return info.major > major || (info.major === major && info.minor >= minor);
}
