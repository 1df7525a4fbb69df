/**
 * Identifiers that cannot be bound as parameters (savepoint names, channels, table and
 * column names) are validated against a strict pattern and then always quoted.
 */

import { InvalidIdentifierError } from '../../core/errors.js';
import { assertIdentifier } from '../../core/identifier.js';

export { assertIdentifier, IDENTIFIER_PATTERN } from '../../core/identifier.js';

export type QuoteStyle = 'double' | 'backtick';

/** MySQL allows 64 characters; PostgreSQL (and SQLite, by txkit's rule) 63. */
const MAX_LENGTH: Record<QuoteStyle, number> = { double: 63, backtick: 64 };

/** Validates and quotes an identifier: `"name"` (SQLite, PostgreSQL) or `` `name` `` (MySQL). */
export function quoteIdentifier(name: string, style: QuoteStyle = 'double', what?: string): string {
  assertIdentifier(name, what, MAX_LENGTH[style]);
  return style === 'double' ? `"${name}"` : `\`${name}\``;
}

/** Validates and quotes a possibly schema-qualified name such as `public.accounts`. */
export function quoteQualifiedName(name: string, style: QuoteStyle = 'double', what = 'table name'): string {
  const parts = typeof name === 'string' ? name.split('.') : [name];
  if (parts.length > 2)
    throw new InvalidIdentifierError(`invalid ${what} ${JSON.stringify(name)}: at most schema.name`);
  return parts.map((p) => quoteIdentifier(p as string, style, what)).join('.');
}
