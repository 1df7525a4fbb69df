import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, createTestDatabase, PG_URL, type TestDatabase } from './helpers.js';

describe.skipIf(!PG_URL)('postgres test server', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase('server');
  });
  afterAll(async () => db?.drop());

  it('has prepared transactions enabled and answers on loopback', async () => {
    const c = await connect(db.url);
    try {
      const { rows } = await c.query<{ max_prepared_transactions: string }>('SHOW max_prepared_transactions');
      expect(Number(rows[0]!.max_prepared_transactions)).toBeGreaterThan(0);
      const addr = await c.query<{ a: string | null }>('SELECT inet_server_addr()::text AS a');
      expect(addr.rows[0]!.a).toMatch(/^127\.0\.0\.1|^::1|^$|null/);
    } finally {
      await c.end();
    }
  });
});
