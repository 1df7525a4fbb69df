/**
 * XA primitives: prepare a branch, find it again with XA RECOVER (as a coordinator does
 * after a crash), and commit it from another connection.
 *
 *   TXKIT_MYSQL_URL=mysql://user:pass@127.0.0.1:3306/db npx tsx examples/mysql-xa.ts
 */
import mysql2 from 'mysql2/promise';
import { xaCommit, xaEnd, xaPrepare, xaRecover, xaStart } from '../src/sql/mysql/index.js';

const url = process.env.TXKIT_MYSQL_URL ?? process.env.DATABASE_URL;
if (!url) throw new Error('set TXKIT_MYSQL_URL (or DATABASE_URL)');

const branch = await mysql2.createConnection(url);
const xid = { gtrid: `order-${Date.now()}`, bqual: 'inventory' };
await branch.query(
  'CREATE TABLE IF NOT EXISTS example_reservations (id INT AUTO_INCREMENT PRIMARY KEY, sku VARCHAR(20))',
);
await xaStart(branch, xid);
await branch.query('INSERT INTO example_reservations (sku) VALUES (?)', ['SKU-1']);
await xaEnd(branch, xid);
await xaPrepare(branch, xid); // durable: survives a crash of this process or of the server
await branch.end(); // detaches the prepared branch from this connection

const coordinator = await mysql2.createConnection(url);
const pending = await xaRecover(coordinator, { prefix: 'order-' });
console.log('prepared branches:', pending);
for (const x of pending) await xaCommit(coordinator, x); // the decision: commit
await coordinator.end();
