export * from './errors.js';
export * from './manager.js';
export type { FileTx } from './transaction.js';
