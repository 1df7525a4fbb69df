export * from './errors.js';
export { RecordType, type WalRecord } from './format.js';
export { type Checkpoint, readWal, type SegmentInfo, verifyWal, type WalVerifyReport } from './reader.js';
export * from './wal.js';
