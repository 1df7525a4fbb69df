/**
 * XA primitives for a later two-phase-commit coordinator: `XA START/END/PREPARE/COMMIT/
 * ROLLBACK` with validated xids, and `XA RECOVER` filtered by gtrid prefix.
 *
 * Xids are validated (1-64 characters of `A-Z a-z 0-9 _ . : -` for the gtrid, 0-64 for the
 * branch qualifier, a format id in 0..2^31-1) and then sent as hex literals, so no xid can
 * carry SQL. On MariaDB a prepared branch stays attached to its connection until that
 * connection closes (another connection gets XAER_NOTA until then), and it survives a
 * server crash or restart: `XA RECOVER` lists it and any connection can then commit it.
 */
import { InvalidArgumentError } from '../../core/errors.js';
import { classifyMysqlError, type MysqlFlavor, toTxkitError, XaError } from './errors.js';
import { type MysqlQueryable, rows } from './server-info.js';

export interface Xid {
  /** Global transaction id: 1-64 characters of `A-Z a-z 0-9 _ . : -`. */
  gtrid: string;
  /** Branch qualifier: 0-64 characters of the same set. Default empty. */
  bqual?: string;
  /** Default 1. */
  formatId?: number;
}

const PART = /^[A-Za-z0-9_.:-]*$/;

function show(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v.length > 80 ? `${v.slice(0, 80)}…` : v) : String(v);
}

/** Validates an xid (or a bare gtrid string) and fills in the defaults. */
export function normalizeXid(xid: Xid | string): Required<Xid> {
  const x = typeof xid === 'string' ? { gtrid: xid } : xid;
  if (x === null || typeof x !== 'object')
    throw new InvalidArgumentError(`xid must be a string or {gtrid, bqual?, formatId?}`);
  const { gtrid, bqual = '', formatId = 1 } = x;
  if (typeof gtrid !== 'string' || gtrid.length < 1 || gtrid.length > 64 || !PART.test(gtrid)) {
    throw new InvalidArgumentError(
      `invalid xid gtrid ${show(gtrid)}: use 1-64 characters from A-Z a-z 0-9 _ . : -`,
    );
  }
  if (typeof bqual !== 'string' || bqual.length > 64 || !PART.test(bqual)) {
    throw new InvalidArgumentError(
      `invalid xid bqual ${show(bqual)}: use 0-64 characters from A-Z a-z 0-9 _ . : -`,
    );
  }
  if (!Number.isInteger(formatId) || formatId < 0 || formatId > 2 ** 31 - 1) {
    throw new InvalidArgumentError(`invalid xid formatId ${show(formatId)}: use an integer 0..2147483647`);
  }
  return { gtrid, bqual, formatId };
}

const hex = (s: string) => `X'${Buffer.from(s, 'utf8').toString('hex')}'`;

/** The xid as SQL: `X'…',X'…',n` (hex literals: nothing in it can be parsed as SQL). */
export function xidSql(xid: Xid | string): string {
  const x = normalizeXid(xid);
  return `${hex(x.gtrid)},${hex(x.bqual)},${x.formatId}`;
}

async function run(conn: MysqlQueryable, sql: string, flavor?: MysqlFlavor): Promise<void> {
  try {
    await (conn as { query(sql: string): Promise<unknown> }).query(sql);
  } catch (err) {
    throw toTxkitError(err, { flavor });
  }
}

/** `XA START xid` on `conn` (the branch's one connection). */
export function xaStart(conn: MysqlQueryable, xid: Xid | string, flavor?: MysqlFlavor): Promise<void> {
  return run(conn, `XA START ${xidSql(xid)}`, flavor);
}

/** `XA END xid`: no more statements in this branch. */
export function xaEnd(conn: MysqlQueryable, xid: Xid | string, flavor?: MysqlFlavor): Promise<void> {
  return run(conn, `XA END ${xidSql(xid)}`, flavor);
}

/** `XA PREPARE xid`: the branch is durable and waits for the decision. */
export function xaPrepare(conn: MysqlQueryable, xid: Xid | string, flavor?: MysqlFlavor): Promise<void> {
  return run(conn, `XA PREPARE ${xidSql(xid)}`, flavor);
}

function isNota(err: unknown): boolean {
  return classifyMysqlError(err).errno === 1397;
}

async function decide(
  q: MysqlQueryable,
  sql: string,
  opts: { flavor?: MysqlFlavor | undefined; detachWaitMs?: number | undefined },
): Promise<'done' | 'unknown-xid'> {
  // A branch prepared on a connection that is closing is briefly still attached to it
  // (XAER_NOTA from other connections): look again for a short, bounded while.
  const end = Date.now() + (opts.detachWaitMs ?? 5_000);
  for (;;) {
    try {
      await (q as { query(sql: string): Promise<unknown> }).query(sql);
      return 'done';
    } catch (err) {
      if (!isNota(err)) throw toTxkitError(err, { flavor: opts.flavor });
      if (Date.now() >= end) return 'unknown-xid';
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

/**
 * `XA COMMIT xid` (or `XA COMMIT xid ONE PHASE` for a branch that was ended, not prepared).
 * Throws {@link XaError} when the server does not know the xid (already decided, or never
 * prepared) — the caller's log says which.
 */
export async function xaCommit(
  q: MysqlQueryable,
  xid: Xid | string,
  opts: { onePhase?: boolean; flavor?: MysqlFlavor; detachWaitMs?: number } = {},
): Promise<void> {
  const sql = `XA COMMIT ${xidSql(xid)}${opts.onePhase ? ' ONE PHASE' : ''}`;
  if ((await decide(q, sql, opts)) === 'unknown-xid') {
    throw new XaError(
      `XA COMMIT: the server does not know xid ${show(normalizeXid(xid).gtrid)} (already decided?)`,
      {
        driverCode: 1397,
        sqlState: 'XAE04',
      },
    );
  }
}

/**
 * `XA ROLLBACK xid`. Idempotent: an xid the server does not know is already rolled back
 * (presumed abort), so it resolves `false` instead of throwing.
 * @returns true when this call rolled the branch back.
 */
export async function xaRollback(
  q: MysqlQueryable,
  xid: Xid | string,
  opts: { flavor?: MysqlFlavor; detachWaitMs?: number } = {},
): Promise<boolean> {
  return (await decide(q, `XA ROLLBACK ${xidSql(xid)}`, opts)) === 'done';
}

export interface RecoveredXid extends Required<Xid> {}

/**
 * `XA RECOVER`: prepared branches, optionally only those whose gtrid starts with `prefix`.
 * The prefix is compared in JS, never put into SQL.
 */
export async function xaRecover(
  q: MysqlQueryable,
  opts: { prefix?: string; flavor?: MysqlFlavor } = {},
): Promise<RecoveredXid[]> {
  if (opts.prefix !== undefined && (typeof opts.prefix !== 'string' || !PART.test(opts.prefix))) {
    throw new InvalidArgumentError(
      `invalid xid prefix ${show(opts.prefix)}: use characters from A-Z a-z 0-9 _ . : -`,
    );
  }
  const rs = await rows<{
    formatID: number;
    gtrid_length: number;
    bqual_length: number;
    data: Buffer | string;
  }>(q, 'XA RECOVER', [], opts.flavor);
  const out: RecoveredXid[] = [];
  for (const r of rs) {
    const data = Buffer.isBuffer(r.data) ? r.data : Buffer.from(String(r.data), 'binary');
    const gl = Number(r.gtrid_length);
    const bl = Number(r.bqual_length);
    const gtrid = data.subarray(0, gl).toString('utf8');
    const bqual = data.subarray(gl, gl + bl).toString('utf8');
    if (opts.prefix !== undefined && !gtrid.startsWith(opts.prefix)) continue;
    out.push({ gtrid, bqual, formatId: Number(r.formatID) });
  }
  return out;
}
