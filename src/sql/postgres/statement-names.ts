/**
 * Names for prepared statements (`postgres({ prepareStatements: true })`). pg prepares a
 * named statement once per connection and from then on sends only Bind/Execute, which
 * skips the server's parse and plan of every repeated statement. Each distinct text gets
 * one name for the whole pool; past `max` texts, new ones run unnamed, so an application
 * that builds SQL dynamically cannot make every connection hold unbounded statements.
 */
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

/**
 * PostgreSQL refuses to run a prepared statement whose result columns changed since it was
 * prepared (ALTER TABLE under `SELECT *`): 0A000 "cached plan must not change result type".
 * The statement stays broken on that connection, so the connection is discarded.
 */
export function isStalePreparedStatement(err: { sqlState?: string | undefined; message: string }): boolean {
  return err.sqlState === '0A000' && /cached plan must not change result type/.test(err.message);
}
