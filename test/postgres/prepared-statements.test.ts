/**
 * `prepareStatements`: each distinct text is prepared once per connection under one name,
 * on the real server; a statement gone stale after a schema change costs its connection.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidOptionError } from '../../src/core/errors.js';
import { postgres } from '../../src/sql/postgres/index.js';
import { StatementNames } from '../../src/sql/postgres/statement-names.js';
import { connect, createTestDatabase, PG_URL, rejection, type TestDatabase } from './helpers.js';

type Prepared = { name: string; statement: string };
const PREPARED = 'SELECT name, statement FROM pg_prepared_statements ORDER BY name';

describe('StatementNames', () => {
  it('gives each text one name, and none past its bound', () => {
    const names = new StatementNames(2);
    expect(names.nameFor('SELECT 1')).toBe('txkit_s1');
    expect(names.nameFor('SELECT 2')).toBe('txkit_s2');
    expect(names.nameFor('SELECT 1')).toBe('txkit_s1');
    expect(names.nameFor('SELECT 3')).toBeUndefined();
    expect(names.nameFor('SELECT 2')).toBe('txkit_s2');
  });
});

describe.skipIf(!PG_URL)('postgres prepareStatements (real server)', () => {
  let tdb: TestDatabase;
  let observer: pg.Client;

  beforeAll(async () => {
    tdb = await createTestDatabase('prepstmt');
    observer = await connect(tdb.url);
    await observer.query('CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL)');
    await observer.query("INSERT INTO items VALUES (1, 'one'), (2, 'two')");
  });
  afterAll(async () => {
    await observer?.end();
    await tdb?.drop();
  });

  it('prepares each statement once per connection and binds only parameters after that', async () => {
    const db = postgres({ connectionString: tdb.url, max: 1, prepareStatements: true });
    try {
      const select = 'SELECT label FROM items WHERE id = $1';
      for (const [id, label] of [
        [1, 'one'],
        [2, 'two'],
      ] as const) {
        expect(await db.transaction((tx) => tx.query(select, [id]))).toEqual([{ label }]);
      }
      expect(await db.query(select, [1])).toEqual([{ label: 'one' }]); // autocommit reuses it too
      const prepared = await db.transaction((tx) => tx.query<Prepared>(PREPARED));
      expect(prepared).toEqual([
        { name: 'txkit_s1', statement: select },
        { name: 'txkit_s2', statement: PREPARED },
      ]);
    } finally {
      await db.close();
    }
  });

  it('is off by default', async () => {
    const db = postgres({ connectionString: tdb.url, max: 1 });
    try {
      await db.transaction((tx) => tx.query('SELECT label FROM items WHERE id = $1', [1]));
      expect(await db.transaction((tx) => tx.query<Prepared>(PREPARED))).toEqual([]);
    } finally {
      await db.close();
    }
  });

  it('a statement gone stale after ALTER TABLE fails once, and its connection is discarded', async () => {
    await observer.query('CREATE TABLE wide (id int PRIMARY KEY)');
    await observer.query('INSERT INTO wide VALUES (1)');
    const db = postgres({ connectionString: tdb.url, max: 1, prepareStatements: true });
    const destroyed: string[] = [];
    db.resource.events.on('connection-destroyed', (e) => destroyed.push(e.reason));
    try {
      const all = () => db.transaction((tx) => tx.query('SELECT * FROM wide'));
      expect(await all()).toEqual([{ id: 1 }]);
      await observer.query('ALTER TABLE wide ADD COLUMN note text');
      const err = (await rejection(all())) as { sqlState?: string };
      expect(err.sqlState).toBe('0A000');
      expect(destroyed).toEqual(['a prepared statement went stale (the schema changed)']);
      expect(await all()).toEqual([{ id: 1, note: null }]); // a fresh connection prepares it anew
    } finally {
      await db.close();
    }
  });

  it('databases sharing a pool share the names: one never reuses a name the other prepared', async () => {
    const pool = new pg.Pool({ connectionString: tdb.url, max: 1 });
    const a = postgres({ pool, prepareStatements: true });
    const b = postgres({ pool, prepareStatements: true });
    try {
      expect(await a.query('SELECT 1 AS a')).toEqual([{ a: 1 }]);
      expect(await b.transaction((tx) => tx.query('SELECT 2 AS b'))).toEqual([{ b: 2 }]);
      expect(await b.query<Prepared>(PREPARED)).toEqual([
        { name: 'txkit_s1', statement: 'SELECT 1 AS a' },
        { name: 'txkit_s2', statement: 'SELECT 2 AS b' },
        { name: 'txkit_s3', statement: PREPARED },
      ]);
    } finally {
      await a.close();
      await b.close();
      await pool.end();
    }
  });

  it('a string of several statements cannot be prepared (42601), as the docs say', async () => {
    const db = postgres({ connectionString: tdb.url, max: 1, prepareStatements: true });
    try {
      const err = (await rejection(db.query('SELECT 1; SELECT 2'))) as { sqlState?: string };
      expect(err.sqlState).toBe('42601');
    } finally {
      await db.close();
    }
  });

  it('rejects a prepareStatements that is not a boolean', () => {
    expect(() =>
      postgres({ connectionString: tdb.url, prepareStatements: 'yes' as unknown as boolean }),
    ).toThrow(InvalidOptionError);
  });
});
