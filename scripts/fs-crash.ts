/**
 * The long SIGKILL crash run for txkit/fs: `npx tsx scripts/fs-crash.ts [rounds] [scenario…]`.
 * Default 500 rounds of each scenario (atomic, wal, fstx, kv); CI runs 40 of each in
 * test/fs/crash.test.ts. Exits 1 on the first invariant violation.
 */
import { crashRounds, type Scenario } from '../test/fs/crash-harness.js';

const rounds = Number(process.argv[2] ?? 500);
const all: Scenario[] = ['atomic', 'wal', 'fstx', 'kv'];
const chosen = (process.argv.slice(3) as Scenario[]).filter((s) => all.includes(s));
const scenarios = chosen.length ? chosen : all;
if (!Number.isInteger(rounds) || rounds < 1) {
  console.error('usage: npx tsx scripts/fs-crash.ts [rounds >= 1] [atomic|wal|fstx|kv ...]');
  process.exit(2);
}

let failed = false;
for (const s of scenarios) {
  const t0 = performance.now();
  const problem = await crashRounds(s, rounds);
  const secs = ((performance.now() - t0) / 1000).toFixed(1);
  if (problem) {
    failed = true;
    console.log(`FAIL ${s}: ${problem} (${secs} s)`);
  } else {
    console.log(`ok   ${s}: ${rounds} SIGKILLs, invariant held every time (${secs} s)`);
  }
}
process.exit(failed ? 1 : 0);
