export * from './durable-queue.js';
export * from './errors.js';
export { RecordType, type WalRecord } from './format.js';
export * from './kv-store.js';
export { type Checkpoint, readWal, type SegmentInfo, verifyWal, type WalVerifyReport } from './reader.js';
export * from './wal.js';
