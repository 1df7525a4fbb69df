/**
 * Atomic replace, integrity manifest and versioned backups.
 *
 *   npx tsx examples/fs-atomic-write.ts
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  atomicWriteJson,
  BackupManager,
  DiskFullError,
  faultyFs,
  verifyFile,
  writeWithManifest,
} from '../src/fs/index.js';

const dir = mkdtempSync(join(tmpdir(), 'txkit-example-'));
try {
  const config = join(dir, 'config.json');

  // Readers (and a crash at any moment) see the whole old file or the whole new one.
  await atomicWriteJson(config, { retries: 3, region: 'eu' }, { indent: 0 });
  console.log('config:', readFileSync(config, 'utf8').trim());

  // Errors are typed by errno, never by message text. (faultyFs simulates a full disk.)
  try {
    await atomicWriteJson(config, { big: true }, { fs: faultyFs([{ call: 'write', errno: 'ENOSPC' }]) });
  } catch (err) {
    if (err instanceof DiskFullError)
      console.log('disk full, old file kept:', readFileSync(config, 'utf8').trim());
  }

  // A checksum manifest updated in two phases, so it never disagrees with the data after a crash.
  const ledger = join(dir, 'ledger.csv');
  const v = await writeWithManifest(ledger, 'id,amount\n1,100\n');
  console.log('ledger version', v, await verifyFile(ledger));
  writeFileSync(ledger, 'id,amount\n1,999\n'); // someone edits it behind our back
  console.log('after tampering:', await verifyFile(ledger));

  // Versioned backups (keep 10) and an atomic restore of the newest one that verifies.
  const backups = new BackupManager({ backupDir: join(dir, 'backups') });
  await backups.create(config);
  await atomicWriteJson(config, { retries: 0 });
  await backups.create(config);
  const used = await backups.restore(config, { version: 1 });
  console.log(`restored v${used.version}:`, readFileSync(config, 'utf8').trim());
  console.log('backups:', (await backups.list(config)).map((b) => `v${b.version} (${b.kind})`).join(', '));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
