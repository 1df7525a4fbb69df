/**
 * Child process for lock tests. Commands (argv[2]):
 * - `counter <file> <n>`: n times `updateFile(file, n => n + 1)` (one lock per read-modify-write).
 * - `exit <file>`: take an exclusive and a shared lock, then `process.exit(0)` without releasing.
 * - `hold <file> <timeoutMs> [staleMs]`: acquire, print `acquired <epoch>`, hold until killed;
 *   prints `compromised …` if the lock is taken over meanwhile.
 */
import { FileLockTimeoutError } from '../../../src/fs/errors.js';
import { lock } from '../../../src/fs/lock.js';
import { updateFile } from '../../../src/fs/update-file.js';

const [cmd, file, arg] = process.argv.slice(2) as [string, string, string];
if (cmd === 'counter') {
  for (let i = 0; i < Number(arg); i++) {
    await updateFile(file, (old) => String(Number(old?.toString() ?? 0) + 1), {
      lock: { timeoutMs: 60_000, pollIntervalMs: 5 },
      write: { durability: 'none' },
    });
  }
  process.exit(0);
} else if (cmd === 'exit') {
  const l = await lock(file);
  const r = await lock(`${file}-shared`, { mode: 'shared' });
  process.stdout.write(`acquired ${l.fencingToken} ${r.token}\n`);
  process.exit(0); // never released explicitly: the exit hook must do it
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
