/**
 * MySQL identifiers that cannot be bound as parameters (table, column and savepoint
 * names): validated against a strict pattern (at most 64 characters), then backtick-quoted.
 * Anything else is rejected with a message that says what is allowed.
 */
import { quoteIdentifier, quoteQualifiedName } from '../shared/identifiers.js';

/** `` `name` `` after validation. */
export function quoteName(name: string, what = 'identifier'): string {
  return quoteIdentifier(name, 'backtick', what);
}

/** A table name, optionally `schema.table`, validated and quoted part by part. */
export function quoteTable(name: string, what = 'table name'): string {
  return quoteQualifiedName(name, 'backtick', what);
}
