/**
 * Rejects transaction-control SQL sent as an ordinary statement. txkit keeps its own
 * transaction state machine; a raw `COMMIT` or `SAVEPOINT` would make it lie about the
 * server's state. Every statement of a multi-statement string is checked; strings,
 * quoted identifiers, comments and dollar-quoted bodies are skipped, and BEGIN … END
 * blocks inside CREATE TRIGGER / PROCEDURE / FUNCTION bodies are not mistaken for
 * transaction control.
 */
import { RawTransactionControlError } from '../../core/errors.js';

const FORBIDDEN_FIRST = new Set([
  'BEGIN',
  'COMMIT',
  'END',
  'ROLLBACK',
  'ABORT',
  'SAVEPOINT',
  'RELEASE',
  'XA',
]);
/** Forbidden when followed by the given second word. */
const FORBIDDEN_PAIRS: Record<string, string[]> = {
  START: ['TRANSACTION'],
  PREPARE: ['TRANSACTION'],
  SET: ['TRANSACTION', 'AUTOCOMMIT'],
};

const cache = new Map<string, string | null>();
const CACHE_LIMIT = 1000;

/** Returns the offending statement's leading words, or null when `sql` has no transaction control. */
export function findTransactionControl(sql: string): string | null {
  const hit = cache.get(sql);
  if (hit !== undefined) return hit;
  // Backslash escapes differ by dialect and setting; scan both ways so neither reading hides a COMMIT.
  const found = scan(sql, false) ?? scan(sql, true);
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(sql, found);
  return found;
}

/**
 * Throws {@link RawTransactionControlError} when `sql` contains BEGIN, START TRANSACTION,
 * COMMIT, END, ROLLBACK, ABORT, SAVEPOINT, RELEASE, PREPARE TRANSACTION, XA or SET TRANSACTION.
 */
export function assertNoTransactionControl(sql: string): void {
  const found = findTransactionControl(sql);
  if (found !== null) {
    throw new RawTransactionControlError(
      `'${found}' cannot be sent as a statement: txkit manages transactions itself. ` +
        'Use db.transaction()/db.begin(), tx.savepoint() or nested transactions, and the isolation/readOnly options.',
    );
  }
}

function scan(sql: string, backslashEscapes: boolean): string | null {
  const n = sql.length;
  let i = 0;
  let words: string[] = []; // leading words of the current statement (up to 2), upper-cased
  let routineBody = false; // statement is CREATE ... TRIGGER/PROCEDURE/FUNCTION/EVENT
  let depth = 0; // BEGIN/CASE ... END nesting inside such a body

  const endStatement = (): string | null => {
    const bad = verdict(words);
    words = [];
    routineBody = false;
    depth = 0;
    return bad;
  };

  while (i < n) {
    const c = sql[i]!;
    if (c === '-' && sql[i + 1] === '-') {
      while (i < n && sql[i] !== '\n') i++;
    } else if (c === '/' && sql[i + 1] === '*') {
      const end = sql.indexOf('*/', i + 2);
      i = end < 0 ? n : end + 2;
    } else if (c === "'" || c === '"' || c === '`') {
      i = skipQuoted(sql, i, c, backslashEscapes);
      if (words.length < 2) words.push('?');
    } else if (c === '$' && /[A-Za-z_$]/.test(sql[i + 1] ?? '') && sql.indexOf('$', i + 1) > 0) {
      const close = sql.indexOf('$', i + 1);
      const tag = sql.slice(i, close + 1);
      if (/^\$[A-Za-z_]*\$$/.test(tag)) {
        const end = sql.indexOf(tag, close + 1);
        i = end < 0 ? n : end + tag.length;
      } else i++;
    } else if (c === ';') {
      if (depth === 0) {
        const bad = endStatement();
        if (bad) return bad;
      }
      i++;
    } else if (/[A-Za-z_]/.test(c)) {
      let j = i + 1;
      while (j < n && /[A-Za-z0-9_$]/.test(sql[j]!)) j++;
      const word = sql.slice(i, j).toUpperCase();
      if (words.length < 2) words.push(word);
      if (words[0] === 'CREATE' && ['TRIGGER', 'PROCEDURE', 'FUNCTION', 'EVENT'].includes(word))
        routineBody = true;
      if (routineBody) {
        if (word === 'BEGIN' || word === 'CASE') depth++;
        else if (word === 'END' && depth > 0) depth--;
      }
      i = j;
    } else {
      if (words.length < 2 && !/\s/.test(c)) words.push(c);
      i++;
    }
  }
  return endStatement();
}

function skipQuoted(sql: string, start: number, quote: string, backslashEscapes: boolean): number {
  let i = start + 1;
  while (i < sql.length) {
    if (sql[i] === quote) {
      if (sql[i + 1] === quote) i += 2;
      else return i + 1;
    } else if (backslashEscapes && sql[i] === '\\' && quote === "'") i += 2;
    else i++;
  }
  return sql.length;
}

function verdict(words: string[]): string | null {
  const [first, second] = words;
  if (first === undefined) return null;
  if (FORBIDDEN_FIRST.has(first)) return second && /^[A-Z]/.test(second) ? `${first} ${second}` : first;
  const pair = FORBIDDEN_PAIRS[first];
  if (pair && second !== undefined && pair.includes(second)) return `${first} ${second}`;
  return null;
}
