import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import {
  FS_EXIT,
  lockBreakCommand,
  lockStatusCommand,
  recoverCommand,
  register,
  walDumpCommand,
  walVerifyCommand,
} from '../../src/cli/fs.js';
import { fsTransaction } from '../../src/fs/file-tx/manager.js';
import { lock } from '../../src/fs/lock.js';
import { openWal } from '../../src/fs/wal/wal.js';
import { useTempDir } from './tmpdir.js';

const tempDir = useTempDir();

describe('txkit fs CLI', () => {
  it('wal verify: ok, torn tail reported, corruption exits 3; dump prints records', async () => {
    const dir = tempDir();
    const wal = await openWal(dir, { maxSegmentBytes: 100 });
    for (let i = 0; i < 6; i++) await wal.append({ type: 1, key: `k${i}`, payload: `{"v":${i}}` });
    await wal.close();
    const ok = await walVerifyCommand(dir);
    expect(ok.exitCode).toBe(FS_EXIT.ok);
    expect(ok.lines[0]).toMatch(/6 record\(s\), LSN 1\.\.6/);
    const dump = await walDumpCommand(dir, { fromLsn: '5' });
    expect(dump.lines).toEqual(['5\t1\tk4\t{"v":4}', '6\t1\tk5\t{"v":5}']);
    expect((await walDumpCommand(dir, { limit: '0' })).exitCode).toBe(FS_EXIT.usage);
    const segs = readdirSync(dir)
      .filter((n) => n.startsWith('wal_'))
      .sort();
    const first = join(dir, segs[0]!);
    const b = readFileSync(first);
    b[b.length - 2] = b[b.length - 2]! ^ 1;
    writeFileSync(first, b);
    const bad = await walVerifyCommand(dir);
    expect(bad.exitCode).toBe(FS_EXIT.corrupt);
    expect(bad.lines.join('\n')).toMatch(/CORRUPTION: wal_0+1\.log offset \d+ \(LSN 2\): checksum mismatch/);
    const j = await walVerifyCommand(dir, { json: true });
    expect(JSON.parse(j.lines[0]!).corruption).toHaveLength(1);
  });

  it('lock status / break', async () => {
    const f = join(tempDir(), 'res');
    const h = await lock(f, { label: 'cli test' });
    const st = await lockStatusCommand(f);
    expect(st.exitCode).toBe(FS_EXIT.locked);
    expect(st.lines.join('\n')).toContain(`pid ${process.pid}`);
    expect((await lockBreakCommand(f)).exitCode).toBe(FS_EXIT.locked);
    expect((await lockBreakCommand(f, { force: true })).exitCode).toBe(FS_EXIT.usage);
    expect((await lockBreakCommand(f, { force: true, yes: true })).exitCode).toBe(FS_EXIT.ok);
    expect((await lockStatusCommand(f)).exitCode).toBe(FS_EXIT.ok);
    await expect(h.release()).rejects.toMatchObject({ code: 'E_LOCK_COMPROMISED' });
  });

  it('recover: dry run lists, real run acts, prepared ones need intervention', async () => {
    const root = tempDir();
    const files = fsTransaction(root);
    const t = await files.begin();
    await t.write('x', '1');
    await t.prepare('g1');
    const dry = await recoverCommand(root, { dryRun: true, json: true });
    expect(JSON.parse(dry.lines[0]!)).toEqual({ forward: [], backward: [], prepared: [expect.any(String)] });
    const real = await recoverCommand(root);
    expect(real.exitCode).toBe(FS_EXIT.intervention);
    await files.rollbackPrepared('g1');
    expect((await recoverCommand(root)).exitCode).toBe(FS_EXIT.ok);
  });

  it('recover --dry-run counts what the real run undoes, staging without a journal included', async () => {
    const root = tempDir();
    mkdirSync(join(root, '.fstx', 'orphan-staging'), { recursive: true }); // a crash before the journal
    const dry = await recoverCommand(root, { dryRun: true, json: true });
    expect(JSON.parse(dry.lines[0]!)).toEqual({ forward: [], backward: ['orphan-staging'], prepared: [] });
    const real = await recoverCommand(root, { json: true });
    expect(JSON.parse(real.lines[0]!)).toEqual({ forward: [], backward: ['orphan-staging'], prepared: [] });
    expect(existsSync(join(root, '.fstx', 'orphan-staging'))).toBe(false);
  });

  it('registers the fs command tree', () => {
    const program = new Command();
    register(program);
    const fs = program.commands.find((c) => c.name() === 'fs')!;
    expect(fs.commands.map((c) => c.name()).sort()).toEqual(['lock', 'recover', 'wal']);
  });
});
