/**
 * MySQL identifiers that cannot be bound as parameters (table, column and savepoint
 * names): validated against a strict pattern, then backtick-quoted. Anything else is
 * rejected with a message that says what is allowed.
 */
import { InvalidIdentifierError } from '../../core/errors.js';

/** Letters, digits and underscores, not starting with a digit, at most 64 characters. */
const NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

function show(name: unknown): string {
  if (typeof name !== 'string') return String(name);
  return JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}…` : name);
}

/** Throws unless `name` is a plain identifier. */
export function assertName(name: unknown, what: string): asserts name is string {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new InvalidIdentifierError(
      `invalid ${what} ${show(name)}: use 1-64 letters, digits or underscores, not starting with a digit`,
    );
  }
}

/** `` `name` `` after validation. */
export function quoteName(name: string, what = 'identifier'): string {
  assertName(name, what);
  return `\`${name}\``;
}

/** A table name, optionally `schema.table`, validated and quoted part by part. */
export function quoteTable(name: string, what = 'table name'): string {
  const parts = typeof name === 'string' ? name.split('.') : [name];
  if (parts.length > 2)
    throw new InvalidIdentifierError(`invalid ${what} ${show(name)}: at most schema.table`);
  return parts.map((p) => quoteName(p as string, what)).join('.');
}
