/**
 * Names for prepared statements (`postgres({ prepareStatements: true })`). pg prepares a
 * named statement once per connection and from then on sends only Bind/Execute, which
 * skips the server's parse and plan of every repeated statement. Each distinct text gets
 * one name for the whole pool; past `max` texts, new ones run unnamed, so an application
 * that builds SQL dynamically cannot make every connection hold unbounded statements.
 */
import type pg from 'pg';
import type { TxkitError } from '../../core/errors.js';
import type { Lease } from './lease.js';

export const MAX_PREPARED_STATEMENTS = 1_000;

export class StatementNames {
  readonly #names = new Map<string, string>();

  constructor(private readonly max = MAX_PREPARED_STATEMENTS) {}

  /** The name to prepare `text` under, or undefined to run it unnamed. */
  nameFor(text: string): string | undefined {
    const known = this.#names.get(text);
    if (known !== undefined || this.#names.size >= this.max) return known;
    const name = `txkit_s${this.#names.size + 1}`;
    this.#names.set(text, name);
    return name;
  }
}

const byPool = new WeakMap<pg.Pool, StatementNames>();

/**
 * The names of `pool`'s connections. Databases sharing one pool share them: pg refuses a
 * name that the connection already prepared for another text.
 */
export function statementNamesFor(pool: pg.Pool): StatementNames {
  let names = byPool.get(pool);
  if (names === undefined) {
    names = new StatementNames();
    byPool.set(pool, names);
  }
  return names;
}

/**
 * PostgreSQL refuses to run a prepared statement whose result columns changed since it was
 * prepared (ALTER TABLE under `SELECT *`): 0A000 "cached plan must not change result type",
 * raised by the plan cache's RevalidateCachedQuery (recognised by that routine, not by the
 * message, which the server translates). The statement stays broken on that connection,
 * so the connection is discarded when it is released.
 */
export function discardIfStale(lease: Lease, err: TxkitError): void {
  if (
    err.sqlState === '0A000' &&
    (err.cause as { routine?: string } | undefined)?.routine === 'RevalidateCachedQuery'
  )
    lease.discard = 'a prepared statement went stale (the schema changed)';
}
