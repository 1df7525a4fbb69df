/**
 * Statement helpers shared by the resource and its transactions: parameters, results,
 * the in-transaction status flag, and statements that would implicitly commit.
 */
import type { PoolConnection as CorePoolConnection } from 'mysql2';
import type mysql2 from 'mysql2/promise';
import { InvalidArgumentError } from '../../core/errors.js';
import type { ExecuteResult, Params } from '../../core/resource.js';

/** Statements that implicitly commit the open transaction (F10); refused inside one. */
const IMPLICIT_COMMIT =
  /^\s*(?:\/\*[\s\S]*?\*\/\s*|--[^\n]*\n\s*|#[^\n]*\n\s*)*\(?\s*(ALTER|CREATE|DROP|RENAME|TRUNCATE|LOCK|UNLOCK|GRANT|REVOKE|ANALYZE|OPTIMIZE|REPAIR|FLUSH|INSTALL|UNINSTALL|LOAD\s+INDEX|CACHE\s+INDEX)\b(\s+TEMPORARY\b)?/i;

export function implicitCommitKeyword(sql: string): string | undefined {
  const m = IMPLICIT_COMMIT.exec(sql);
  if (!m || m[2]) return undefined; // CREATE/DROP TEMPORARY TABLE do not commit
  return (m[1] as string).toUpperCase().replace(/\s+/g, ' ');
}

export const SERVER_STATUS_IN_TRANS = 0x01;

/**
 * A pooled connection on mysql2's callback API. The promise API wraps every query in a
 * promise of its own (and every borrowed connection in an EventEmitter); txkit makes the
 * one promise per statement itself, so each statement costs one promise, not three.
 */
export type Conn = CorePoolConnection;

/** One statement as a promise of its raw result (for paths off the per-transaction hot path). */
export function queryOn(conn: Conn, sql: string, values?: unknown[]): Promise<unknown> {
  return new Promise((resolve, reject) => {
    conn.query(sql, values, (err: unknown, result: unknown) => {
      if (err) reject(err);
      else resolve(result);
    });
  });
}

export function checkParams(params: Params | undefined): unknown[] | undefined {
  if (params === undefined) return undefined;
  if (!Array.isArray(params)) {
    throw new InvalidArgumentError(
      'MySQL statements take positional ? parameters: pass an array, not an object',
    );
  }
  return params as unknown[];
}

export function toExecuteResult(result: unknown): ExecuteResult {
  if (Array.isArray(result)) return { rowsAffected: result.length };
  const h = result as mysql2.ResultSetHeader;
  const out: ExecuteResult = { rowsAffected: Number(h.affectedRows ?? 0) };
  if (h.insertId) out.lastInsertId = h.insertId;
  return out;
}
