/**
 * A pooled connection checked out by txkit, watched for failure while it is out, and the
 * statement helpers shared by autocommit and transaction paths.
 */
import type pg from 'pg';
import { InvalidArgumentError } from '../../core/errors.js';
import type { EventHub } from '../../core/events.js';
import type { ExecuteResult, Params } from '../../core/resource.js';

/** Events of a PostgreSQL resource (published on `txkit:pg:<event>`). */
export interface PgResourceEvents {
  /** A connection was destroyed instead of returned to the pool, and why. */
  'connection-destroyed': { reason: string };
  /** The pool's own events, re-emitted (`pool:connect` … `pool:remove`) with its occupancy. */
  'pool:connect': PoolEventInfo;
  'pool:acquire': PoolEventInfo;
  'pool:release': PoolEventInfo;
  'pool:remove': PoolEventInfo;
  'pool:error': PoolEventInfo & { error: unknown };
  error: { source: string; error: unknown };
}

/** Pool occupancy at the time of a pool event, and the session concerned. */
export interface PoolEventInfo {
  processId: number | undefined;
  total: number;
  idle: number;
  waiting: number;
}

/** A pooled `pg` client with the fields txkit reads (process id and secret key for cancels). */
export type PgClient = pg.PoolClient & {
  processID?: number;
  secretKey?: number;
  host?: string;
  port?: number;
  getTransactionStatus?: () => string | null;
};

/** Positional parameters only: PostgreSQL has `$1`, not named parameters. */
export function positional(params: Params | undefined): unknown[] | undefined {
  if (params === undefined) return undefined;
  if (Array.isArray(params)) return params as unknown[];
  throw new InvalidArgumentError(
    'PostgreSQL takes positional parameters ($1, $2, …): pass an array, not an object',
  );
}

/** What pg hands a query callback: one result, or one per statement of a multi-statement string. */
export type PgResult = pg.QueryResult | pg.QueryResult[];

/** A client queried as `query(text, values, callback)`: no promise of pg's own. */
export interface CallbackClient {
  query(
    text: string,
    values: unknown[] | undefined,
    callback: (err: Error | null | undefined, result: PgResult) => void,
  ): void;
  query(
    config: { name: string; text: string; values: unknown[] | undefined },
    callback: (err: Error | null | undefined, result: PgResult) => void,
  ): void;
}

/** Sends one statement, prepared under `name` when one is given. */
export function sendStatement(
  client: PgClient,
  text: string,
  values: unknown[] | undefined,
  name: string | undefined,
  callback: (err: Error | null | undefined, result: PgResult) => void,
): void {
  const c = client as unknown as CallbackClient;
  if (name === undefined) c.query(text, values, callback);
  else c.query({ name, text, values }, callback);
}

/** Rows of a result (the last one, for a multi-statement string). */
export function rowsOf<T>(r: pg.QueryResult | pg.QueryResult[]): T[] {
  const last = Array.isArray(r) ? r[r.length - 1] : r;
  return (last?.rows ?? []) as T[];
}

/** Rows affected, summed over a multi-statement string. */
export function affected(r: pg.QueryResult | pg.QueryResult[]): ExecuteResult {
  const list = Array.isArray(r) ? r : [r];
  return { rowsAffected: list.reduce((n, x) => n + (x.rowCount ?? 0), 0) };
}

/** The lease currently holding a checked-out client, kept on the client itself (no per-lease closure or map). */
const LEASE = Symbol('txkit.pg.lease');
/** Marks a client whose shared 'error' listener is attached (checked without copying its listener list). */
const WATCHED = Symbol('txkit.pg.watched');
type LeasedClient = PgClient & { [LEASE]?: Lease | undefined; [WATCHED]?: true };

function onLeasedClientError(this: LeasedClient, err: unknown): void {
  const lease = this[LEASE];
  if (!lease) return;
  lease.dead = true;
  lease.deathCause ??= err;
}

/** A pooled connection checked out by txkit, watched for failure while it is out. */
export class Lease {
  dead = false;
  /** The error that killed the connection (e.g. a FATAL 25P03 idle-in-transaction timeout). */
  deathCause: unknown;
  cancelSent = false;
  /** Set when the connection must not be reused even though it is idle (a stale prepared statement). */
  discard: string | undefined;
  #released = false;

  constructor(
    readonly client: PgClient,
    private readonly events: EventHub<PgResourceEvents>,
  ) {
    const c = client as LeasedClient;
    c[LEASE] = this;
    // Attached once per client and kept: a late socket error on any client must not crash the process.
    if (c[WATCHED] !== true) {
      c[WATCHED] = true;
      if (!client.listeners('error').includes(onLeasedClientError)) client.on('error', onLeasedClientError);
    }
  }

  /** Returns the connection only when it is idle and nothing can still hit it; else destroys it. */
  release(doubt?: string): void {
    if (this.#released) return;
    this.#released = true;
    const status = this.client.getTransactionStatus?.();
    const reason =
      doubt ??
      this.discard ??
      (this.dead
        ? 'the connection failed'
        : this.cancelSent
          ? 'a cancel request was sent on it'
          : status != null && status !== 'I'
            ? `the server reports transaction status '${status}', not idle`
            : undefined);
    (this.client as LeasedClient)[LEASE] = undefined;
    if (reason !== undefined) {
      if (this.events.wants('connection-destroyed')) this.events.emit('connection-destroyed', { reason });
      this.client.release(new Error(`txkit: connection destroyed: ${reason}`));
    } else {
      this.client.release();
    }
  }
}
