/**
 * Child process for lock tests. Commands (argv[2]):
 * - `counter <file> <n>`: n times: lock, read number, write number+1 (atomically), unlock.
 * - `hold <file> <timeoutMs> [staleMs]`: acquire, print `acquired <epoch>`, hold until killed;
 *   prints `compromised …` if the lock is taken over meanwhile.
 */
import { readFileSync } from 'node:fs';
import { atomicWriteFile } from '../../../src/fs/atomic-write.js';
import { FileLockTimeoutError } from '../../../src/fs/errors.js';
import { lock } from '../../../src/fs/lock.js';

const [cmd, file, arg] = process.argv.slice(2) as [string, string, string];
if (cmd === 'counter') {
  for (let i = 0; i < Number(arg); i++) {
    const l = await lock(file, { timeoutMs: 60_000, pollIntervalMs: 5 });
    let n = 0;
    try {
      n = Number(readFileSync(file, 'utf8'));
    } catch {}
    await atomicWriteFile(file, String(n + 1), { durability: 'none' });
    await l.release();
  }
  process.exit(0);
} else if (cmd === 'hold') {
  const staleMs = Number(process.argv[5] ?? 60_000);
  try {
    const l = await lock(file, {
      timeoutMs: Number(arg),
      pollIntervalMs: 10,
      staleMs,
      onCompromised: (err) => process.stdout.write(`compromised ${err.message}\n`),
    });
    process.stdout.write(`acquired ${l.fencingToken}\n`);
    setInterval(() => {}, 1000);
  } catch (err) {
    process.stdout.write(err instanceof FileLockTimeoutError ? 'timeout\n' : `error ${String(err)}\n`);
    process.exit(0);
  }
}
