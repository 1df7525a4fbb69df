/**
 * SIGKILL crash tests: real child processes killed at random moments, then recovery and
 * an invariant check. `TXKIT_FS_CRASH_ROUNDS` sets rounds per scenario (default 40);
 * `npx tsx scripts/fs-crash.ts` runs many more.
 */
import { describe, expect, it } from 'vitest';
import { crashRounds } from './crash-harness.js';

const rounds = Number(process.env.TXKIT_FS_CRASH_ROUNDS ?? 40);

describe('SIGKILL crash tests', () => {
  it(`atomicWriteFile: the file is always entirely old or entirely new (${rounds} kills)`, async () => {
    expect(await crashRounds('atomic', rounds)).toBeUndefined();
  }, 120_000);

  it(`WAL: exactly the acknowledged records survive, in order, no phantom, none torn (${rounds} kills)`, async () => {
    expect(await crashRounds('wal', rounds)).toBeUndefined();
  }, 120_000);

  it(`fsTransaction: a multi-file transaction is all or nothing after recovery (${rounds} kills)`, async () => {
    expect(await crashRounds('fstx', rounds)).toBeUndefined();
  }, 120_000);

  it(`KvStore: acknowledged sets survive kills during writes and snapshots (${rounds} kills)`, async () => {
    expect(await crashRounds('kv', rounds)).toBeUndefined();
  }, 120_000);
});
