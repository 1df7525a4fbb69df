import { describe, expect, it } from 'vitest';
import { runPgDemo } from '../../src/sql/postgres/demo.js';
import { PG_URL } from './helpers.js';

describe.skipIf(!PG_URL)('runPgDemo (real server)', () => {
  it('every scenario holds', async () => {
    const lines = await runPgDemo(PG_URL!);
    expect(lines).toHaveLength(6);
    for (const line of lines) expect(line.startsWith('✔'), line).toBe(true);
  });
});
