import { describe, expect, it } from 'vitest';
import { runMysqlDemo } from '../../src/sql/mysql/demo.js';
import { url } from './helpers.js';

describe.skipIf(!url)('txkit demo --mysql', () => {
  it('runs every scenario on the real server and reports what happened', async () => {
    const lines = await runMysqlDemo(url as string);
    const text = lines.join('\n');
    expect(text).toMatch(/^server: mariadb 10\./m);
    expect(text).toMatch(/ordered-lock transfer 1→2 of 100\.00: 1:4900\.00 2:3100\.00/);
    expect(text).toMatch(/overdraft refused by CHECK: E_CHECK; nothing half-done: 1:4900\.00 2:3100\.00/);
    expect(text).toMatch(/deadlock provoked: transaction [12] was the victim \(E_DEADLOCK, SQLSTATE 40001\)/);
    expect(text).toMatch(/2 transactions \(mariadb-full\)/);
    expect(text).toMatch(/waits for X record lock test\.txkit_demo_\d+\.PRIMARY on [12] held by trx \d+/);
    expect(text).toMatch(
      /opposite-order transfers with retry: 1 deadlock retry, both committed: 1:4910\.00 2:3090\.00/,
    );
    expect(text).toMatch(/XA branch committed: 1:4911\.00 2:3090\.00/);
  }, 60_000);
});
