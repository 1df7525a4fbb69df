import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '../..');
const run = (file: string) => promisify(execFile)(process.execPath, ['--import', 'tsx', file], { cwd: ROOT });

describe('SQLite examples run as documented', () => {
  it('examples/sqlite-quickstart.ts', async () => {
    const { stdout } = await run('examples/sqlite-quickstart.ts');
    expect(stdout).toContain('receipt: 2500 cents from 1 to 2');
    expect(stdout).toContain('refused: E_CHECK');
    expect(stdout).toContain("{ owner: 'Alice', balance: 7500 }");
  });
});
