/**
 * `transactional()` and `@Transactional()`: the same runner as db.transaction(), as a
 * higher-order function and as a TC39 method decorator.
 */
import type { Database } from './database.js';
import type { TransactionOptions } from './options.js';
import type { Transaction } from './transaction.js';

/**
 * Wraps `fn` so that every call runs in a transaction of `db`; the transaction is passed
 * explicitly as the first argument.
 *
 * @example
 * const transfer = transactional(db, async (tx, from: number, to: number, amount: number) => {
 *   await tx.execute('UPDATE accounts SET balance = balance - ? WHERE id = ?', [amount, from]);
 *   await tx.execute('UPDATE accounts SET balance = balance + ? WHERE id = ?', [amount, to]);
 * }, { retry: true });
 * await transfer(1, 2, 100);
 */
export function transactional<A extends unknown[], R, T extends Transaction>(
  db: Database<any, T>,
  fn: (tx: T, ...args: A) => R | Promise<R>,
  options?: TransactionOptions,
): (...args: A) => Promise<R> {
  return (...args: A) => db.transaction((tx: T) => fn(tx, ...args), options as never);
}

/**
 * Method decorator (TC39, TypeScript 5+): the method runs in a transaction of `db`
 * (a Database, or a function of `this` returning one). Inside, use `currentTransaction(db)`
 * or simply `db.query()` / `db.execute()`, which join the ambient transaction.
 *
 * @example
 * class Accounts {
 *   constructor(readonly db: Database) {}
 *   @Transactional((self: Accounts) => self.db, { isolation: 'serializable', retry: true })
 *   async transfer(from: number, to: number, amount: number) {
 *     await this.db.execute('UPDATE accounts SET balance = balance - ? WHERE id = ?', [amount, from]);
 *     await this.db.execute('UPDATE accounts SET balance = balance + ? WHERE id = ?', [amount, to]);
 *   }
 * }
 */
export function Transactional<This, A extends unknown[], R>(
  db: Database<any, any> | ((self: This) => Database<any, any>),
  options?: TransactionOptions,
) {
  return (
    method: (this: This, ...args: A) => Promise<R>,
    context: ClassMethodDecoratorContext<This, (this: This, ...args: A) => Promise<R>>,
  ) => {
    const name = String(context.name);
    const opts = options?.name === undefined ? { ...options, name } : options;
    return function (this: This, ...args: A): Promise<R> {
      const target = typeof db === 'function' ? db(this) : db;
      return target.transaction(() => method.apply(this, args), opts as never);
    };
  };
}
