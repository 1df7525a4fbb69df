/**
 * Identifiers that cannot be bound as parameters (savepoint names, channels, GIDs built
 * from names, table names) must match a strict pattern before they reach any SQL.
 */
import { InvalidIdentifierError } from './errors.js';

/** Letters, digits and underscores, not starting with a digit, at most 63 characters. */
export const IDENTIFIER_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** {@link IDENTIFIER_PATTERN} without its length limit, which `maxLength` sets. */
const IDENTIFIER_CHARS = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Throws {@link InvalidIdentifierError} unless `name` matches {@link IDENTIFIER_PATTERN}
 * (with `maxLength` characters at most).
 * @param what what the identifier names, for the message ("savepoint name", "table", ...)
 * @param maxLength the backend's limit when it is not PostgreSQL's 63 (MySQL: 64)
 */
export function assertIdentifier(name: unknown, what = 'identifier', maxLength = 63): asserts name is string {
  if (typeof name !== 'string' || name.length > maxLength || !IDENTIFIER_CHARS.test(name)) {
    const shown =
      typeof name === 'string'
        ? JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}…` : name)
        : String(name);
    throw new InvalidIdentifierError(
      `invalid ${what} ${shown}: use 1-${maxLength} letters, digits or underscores, not starting with a digit`,
    );
  }
}
