/**
 * Crash-test workloads, run with `node --import tsx` and killed with SIGKILL by the parent
 * at a random moment. Each prints `ready` on stdout once started, and logs to
 * `$TXKIT_CRASH_LOG` what it is about to do (`try`) and what was acknowledged (`ack`).
 */
import { openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { atomicWriteFile } from '../../../src/fs/atomic-write.js';
import { fsTransaction } from '../../../src/fs/file-tx/manager.js';
import { KvStore } from '../../../src/fs/wal/kv-store.js';
import { openWal } from '../../../src/fs/wal/wal.js';

const [mode, target] = process.argv.slice(2) as [string, string];
// Reports go to a log file with writeSync: in the page cache before the next step starts,
// so they survive SIGKILL (a pipe write can be queued in user space when the pipe is full).
const log = openSync(process.env.TXKIT_CRASH_LOG!, 'a');
const out = (s: string) => {
  writeSync(log, `${s}\n`);
  if (s.startsWith('ready')) process.stdout.write('ready\n');
};

/** 48 KiB whose every byte says which generation wrote it. */
export const atomicPayload = (g: number) => Buffer.alloc(48 * 1024, `g${g};`);

/** Generation found on disk, so a restarted workload continues where the killed one stopped. */
function generationOf(path: string, re: RegExp): number {
  try {
    return Number(re.exec(readFileSync(path, 'latin1').slice(0, 32))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

if (mode === 'atomic') {
  out('ready');
  for (let g = generationOf(target, /^g(\d+);/) + 1; ; g++) {
    out(`try ${g}`);
    await atomicWriteFile(target, atomicPayload(g));
    out(`ack ${g}`);
  }
} else if (mode === 'wal') {
  const wal = await openWal(target, { maxSegmentBytes: 64 * 1024 });
  out('ready');
  let n = 0;
  const appender = async (w: number) => {
    for (;;) {
      const key = `p${process.pid}-w${w}-${n++}`;
      out(`try ${key}`);
      const { lsn } = await wal.append({ key, payload: `payload-of-${key}`.repeat(1 + (n % 7)) });
      out(`ack ${lsn} ${key}`);
    }
  };
  await Promise.all(Array.from({ length: 8 }, (_, w) => appender(w)));
} else if (mode === 'fstx') {
  const files = fsTransaction(target);
  await files.recover();
  out('ready');
  for (let g = generationOf(join(target, 'a.txt'), /^gen (\d+)/) + 1; ; g++) {
    out(`try ${g}`);
    await files.transaction(async (t) => {
      await t.write('a.txt', `gen ${g}`);
      await t.write('sub/b.txt', `gen ${g}`);
      if (await t.exists('c.txt')) await t.rename('c.txt', `old/c-${g}.txt`);
      await t.create('c.txt', `gen ${g}`);
      if (await t.exists(`old/c-${g - 2}.txt`)) await t.delete(`old/c-${g - 2}.txt`);
    });
    out(`ack ${g}`);
  }
} else if (mode === 'kv') {
  const kv = await KvStore.open(target, { wal: { maxSegmentBytes: 16 * 1024 } });
  out(`ready ${kv.stats().key_count}`);
  const base = Number(kv.get('__ops', 0));
  for (let i = base + 1; ; i++) {
    const key = `k${i % 50}`;
    out(`try ${key} ${i}`);
    await kv.set(key, i);
    await kv.set('__ops', i);
    out(`ack ${key} ${i}`);
    if (i % 40 === 0) await kv.snapshot();
  }
}
