/** Validation shared by the recipes: names that become parts of keys, and amounts. */
import { InvalidArgumentError } from '../../core/errors.js';

const PART = /^[^{}\s]{1,200}$/;

/** An id that becomes part of a key: 1–200 characters, no whitespace, no `{` or `}` (hash tags are txkit's). */
export function checkKeyPart(what: string, value: unknown): string {
  if (typeof value !== 'string' || !PART.test(value)) {
    throw new InvalidArgumentError(
      `${what} must be 1–200 characters without whitespace, '{' or '}', got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/** A positive safe integer (amounts are in minor units: cents, items). */
export function isPositiveInt(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}
