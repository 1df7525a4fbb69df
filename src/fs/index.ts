/**
 * `txkit/fs`: crash-safe filesystem transactions. Atomic replace, cross-process locks,
 * multi-file transactions, a write-ahead log, integrity manifests and backups.
 */
export * from './atomic-write.js';
export * from './backup.js';
export { crc32c } from './crc32c.js';
export * from './errors.js';
export * from './events.js';
export * from './fault-injection.js';
export * from './file-tx/index.js';
export * from './fs-adapter.js';
export * from './integrity.js';
export * from './lock.js';
export * from './lock-admin.js';
export * from './lock-many.js';
export * from './power-loss.js';
export * from './process-identity.js';
export * from './update-file.js';
export * from './wal/index.js';
export * from './with-lock.js';
