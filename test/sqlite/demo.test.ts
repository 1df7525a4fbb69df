import { describe, expect, it } from 'vitest';
import { runDemo } from '../../src/cli/demo.js';

describe('txkit demo', () => {
  it('runs every scenario and reports that the guarantees held', async () => {
    const lines = await runDemo({ workers: 2, transfersPerWorker: 100 });
    expect(lines[1]).toMatch(/rolled back: Alice 1000.00, Bob 500.00/);
    expect(lines[2]).toMatch(/CheckViolationError \(E_CHECK\)/);
    expect(lines[3]).toMatch(/2 processes x 100 random transfers .* total still 2000.00/);
    expect(lines[4]).toMatch(/total 6296.40, stock 9\/18\/14\/8/);
    expect(lines[5]).toMatch(/read back identical/);
    expect(lines.at(-1)).toMatch(/all guarantees held/);
  }, 60_000);
});
