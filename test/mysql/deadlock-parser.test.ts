import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  extractDeadlockSection,
  parseDeadlocks,
  parseErrorLogDeadlocks,
  parseInnodbStatus,
  parseLockHeader,
  statusTextFromRow,
} from '../../src/sql/mysql/deadlock-parser.js';

const local = (f: string) => readFileSync(new URL(`./fixtures/${f}`, import.meta.url), 'utf8');

describe('MariaDB 10.11 fixtures', () => {
  it('two-transaction status dump: one deadlock with every field', () => {
    const text = local('mariadb-10.11-innodb-status-deadlock-two-tx.txt');
    const d = parseInnodbStatus(text).latestDeadlock;
    expect(d).toBeDefined();
    expect(parseDeadlocks(text)).toHaveLength(1);
    expect(d?.detectedAt).toBe('2026-11-24 01:25:17 0x7f9c984f46c0');
    expect(d?.format).toBe('mariadb-full');
    expect(d?.victimIndex).toBe(1);
    expect(d?.truncated).toBe(false);
    const [t1, t2] = d?.transactions ?? [];
    expect(d?.transactions).toHaveLength(2);
    expect(t1).toMatchObject({
      index: 1,
      trxId: '29',
      activeSec: 1,
      operationState: 'starting index read',
      tablesInUse: 1,
      tablesLocked: 1,
      lockStructs: 4,
      heapSize: 1128,
      rowLocks: 3,
      undoLogEntries: 1,
      threadId: 13,
      queryId: 39,
      host: 'localhost',
      address: '127.0.0.1',
      user: 'root',
      state: 'Updating',
      query: "UPDATE accounts SET balance=balance+1 WHERE account_number='A1'",
      blockedBy: ['28'],
    });
    expect(t1?.waitingFor).toMatchObject({
      kind: 'RECORD',
      spaceId: 5,
      pageNo: 4,
      nBits: 320,
      index: 'account_number',
      table: 'bank_db.accounts',
      trxId: '29',
      mode: 'X',
      waiting: true,
      records: ['A1'],
    });
    expect(t1?.conflictingWith).toHaveLength(1);
    expect(t1?.conflictingWith[0]).toMatchObject({ trxId: '28', mode: 'X', waiting: false, records: ['A1'] });
    expect(t2).toMatchObject({
      trxId: '28',
      threadId: 12,
      queryId: 38,
      lockStructs: 5,
      undoLogEntries: 2,
      blockedBy: ['29'],
    });
    expect(t2?.waitingFor?.records).toEqual(['A2']);
    // The section runs to the dashes before TRANSACTIONS, not to the header's underline.
    expect(extractDeadlockSection(text)).toContain('WE ROLL BACK TRANSACTION (1)');
    expect(extractDeadlockSection(text)).not.toContain('Trx id counter');
  });

  it('three-transaction section: the cycle 117 → 118 → 119 → 117, victim 3', () => {
    const d = parseInnodbStatus(local('mariadb-10.11-deadlock-section-three-tx-full.txt')).latestDeadlock;
    expect(d?.detectedAt).toBe('2026-11-24 01:29:07 0x7f9c989696c0');
    expect(
      d?.transactions.map((t) => [
        t.trxId,
        t.threadId,
        t.queryId,
        t.blockedBy[0],
        t.waitingFor?.records?.[0],
      ]),
    ).toEqual([
      ['117', 38, 329, '118', 'A2'],
      ['118', 39, 330, '119', 'A3'],
      ['119', 40, 331, '117', 'A1'],
    ]);
    expect(d?.victimIndex).toBe(3);
  });

  it('error log: three dumps (full and basic), warnings ignored', () => {
    const text = local('mariadb-10.11-errorlog-deadlocks-full-and-basic.txt');
    const all = parseErrorLogDeadlocks(text);
    expect(parseDeadlocks(text)).toHaveLength(3);
    expect(all).toHaveLength(3);
    const [a, b, c] = all;
    expect(a?.detectedAt).toContain('01:29:07');
    expect(a?.format).toBe('mariadb-full');
    expect(a?.transactions.map((t) => t.trxId)).toEqual(['117', '118', '119']);
    expect(a?.transactions[0]?.conflictingWith[0]?.trxId).toBe('118');
    expect(a?.victimIndex).toBe(3);
    expect(b?.detectedAt).toContain('01:29:57');
    expect(b?.format).toBe('mariadb-basic');
    expect(b?.transactions.map((t) => [t.trxId, t.threadId])).toEqual([
      ['123', 41],
      ['124', 42],
      ['125', 43],
    ]);
    expect(b?.transactions.every((t) => t.conflictingWith.length === 0)).toBe(true);
    expect(b?.victimIndex).toBe(3);
    expect(c?.detectedAt).toContain('01:31:13');
    expect(c?.transactions).toHaveLength(2);
    expect(c?.transactions[0]).toMatchObject({
      trxId: '133',
      threadId: 57,
      lockStructs: 5,
      undoLogEntries: 3,
    });
    expect(c?.transactions[0]?.waitingFor?.records).toEqual(['A1']);
    expect(c?.transactions[1]).toMatchObject({ trxId: '136', threadId: 56, undoLogEntries: 1 });
    expect(c?.transactions[1]?.waitingFor?.records).toEqual(['A2']);
    expect(c?.victimIndex).toBe(2);
  });

  it('reads the Status column by name, never Type', () => {
    const text = local('mariadb-10.11-innodb-status-deadlock-two-tx.txt');
    const row = { Type: 'InnoDB', Name: '', Status: text };
    expect(statusTextFromRow(row)).toBe(text);
    expect(parseInnodbStatus(statusTextFromRow(row) ?? '').latestDeadlock?.transactions).toHaveLength(2);
    expect(statusTextFromRow(['InnoDB', '', text])).toBe(text);
    expect(statusTextFromRow({ Type: 'InnoDB' })).toBeUndefined();
  });

  it('no deadlock section → undefined; a truncated section → what it holds', () => {
    const text = local('mariadb-10.11-innodb-status-deadlock-two-tx.txt');
    const start = text.indexOf('------------------------\nLATEST DETECTED DEADLOCK');
    const end = text.indexOf('------------\nTRANSACTIONS');
    const without = text.slice(0, start) + text.slice(end);
    expect(parseInnodbStatus(without).latestDeadlock).toBeUndefined();
    expect(parseInnodbStatus('').latestDeadlock).toBeUndefined();
    const cut = text.slice(0, text.indexOf('*** (2) TRANSACTION:') + 60);
    const d = parseInnodbStatus(cut).latestDeadlock;
    expect(d?.truncated).toBe(true);
    expect(d?.victimIndex).toBeNull();
    expect(d?.transactions.map((t) => t.trxId)).toEqual(['29', '28']);
  });
});

describe('MySQL formats', () => {
  it('MySQL 5.7: numbered WAITING, HOLDS only for (2), MySQL thread id', () => {
    const d = parseInnodbStatus(local('mysql-5.7-deadlock-section.txt')).latestDeadlock;
    expect(d?.format).toBe('mysql');
    expect(d?.detectedAt).toBe('2025-03-02 10:11:09 0x7f0a2c1b9700');
    expect(d?.transactions).toHaveLength(2);
    expect(d?.transactions[0]).toMatchObject({
      trxId: '4211',
      threadId: 21,
      queryId: 210,
      host: 'localhost',
      user: 'app',
      state: 'updating',
      undoLogEntries: 0,
      query: 'DELETE FROM shop.orders WHERE id = 7',
    });
    expect(d?.transactions[0]?.waitingFor).toMatchObject({
      table: 'shop.orders',
      index: 'PRIMARY',
      recNotGap: true,
    });
    expect(d?.transactions[1]).toMatchObject({
      trxId: '4212',
      address: '127.0.0.2',
      user: 'batch',
      state: 'statistics',
    });
    expect(d?.transactions[1]?.holds).toHaveLength(1);
    expect(d?.transactions[1]?.holds[0]).toMatchObject({ mode: 'S', waiting: false });
    expect(d?.transactions[1]?.waitingFor?.mode).toBe('X');
    expect(d?.victimIndex).toBe(1);
  });

  it('MySQL 8.0: HOLDS for every transaction, table locks too', () => {
    const d = parseInnodbStatus(local('mysql-8.0-deadlock-section.txt')).latestDeadlock;
    expect(d?.transactions.map((t) => t.holds.length)).toEqual([1, 2]);
    expect(d?.transactions[1]?.holds[0]).toMatchObject({ kind: 'TABLE', table: 'zoo.Birds', mode: 'IS' });
    expect(d?.transactions[0]?.holds[0]?.records).toEqual(['Aardvark']);
    expect(d?.transactions[0]?.waitingFor?.records).toEqual(['Buzzard']);
    expect(d?.victimIndex).toBe(2);
  });

  it('MySQL 8.0 error log with [MY-…] [InnoDB] prefixes and gap / insert-intention locks', () => {
    const [d, ...rest] = parseErrorLogDeadlocks(local('mysql-8.0-errorlog-deadlock.txt'));
    expect(rest).toHaveLength(0);
    expect(d?.detectedAt).toBe('2025-06-30 08:00:41');
    expect(d?.transactions.map((t) => t.query)).toEqual([
      'INSERT INTO shop.slots (k) VALUES (10)',
      'INSERT INTO shop.slots (k) VALUES (11)',
    ]);
    expect(d?.transactions[0]?.holds[0]).toMatchObject({ gapOnly: true, waiting: false });
    expect(d?.transactions[0]?.waitingFor).toMatchObject({
      gapOnly: true,
      insertIntention: true,
      waiting: true,
    });
    expect(d?.victimIndex).toBe(2);
  });

  it('lock header variants', () => {
    expect(parseLockHeader('TABLE LOCK table `a``b`.`t` trx id 5 lock mode AUTO-INC waiting')).toMatchObject({
      kind: 'TABLE',
      table: 'a`b.t',
      mode: 'AUTO-INC',
      waiting: true,
    });
    expect(parseLockHeader('Record lock, heap no 2')).toBeUndefined();
  });
});

describe('record keys', () => {
  it('decodes InnoDB integer keys (sign bit flipped) and keeps printable strings', () => {
    const text = [
      'LATEST DETECTED DEADLOCK',
      '------------------------',
      '2026-01-01 00:00:00 0x1',
      '*** (1) TRANSACTION:',
      'TRANSACTION 5, ACTIVE 0 sec starting index read',
      'MariaDB thread id 7, OS thread handle 1, query id 2 localhost 127.0.0.1 app Updating',
      'SELECT 1',
      '*** WAITING FOR THIS LOCK TO BE GRANTED:',
      'RECORD LOCKS space id 5 page no 3 n bits 8 index PRIMARY of table `d`.`t` trx id 5 lock_mode X locks rec but not gap waiting',
      'Record lock, heap no 2 PHYSICAL RECORD: n_fields 3; compact format; info bits 0',
      ' 0: len 4; hex 80000002; asc     ;;',
      'Record lock, heap no 3 PHYSICAL RECORD: n_fields 3; compact format; info bits 0',
      ' 0: len 4; hex 7fffffff; asc    ;;',
      'Record lock, heap no 4 PHYSICAL RECORD: n_fields 3; compact format; info bits 0',
      ' 0: len 8; hex 8000000000000064; asc         d;;',
      'Record lock, heap no 5 PHYSICAL RECORD: n_fields 3; compact format; info bits 0',
      ' 0: len 3; hex 00ff01; asc    ;;',
      'Record lock, heap no 6 PHYSICAL RECORD: n_fields 3; compact format; info bits 0',
      ' 0: len 4; hex 61622020; asc ab  ;;', // CHAR(4) 'ab' padded: text, not a 4-byte integer
      'Record lock, heap no 7 PHYSICAL RECORD: n_fields 3; compact format; info bits 0',
      ' 0: len 8; hex 6f726465722d3432; asc order-42;;',
      '*** WE ROLL BACK TRANSACTION (1)',
    ].join('\n');
    expect(parseInnodbStatus(text).latestDeadlock?.transactions[0]?.waitingFor?.records).toEqual([
      '2',
      '-1',
      '100',
      '0x00ff01',
      'ab  ',
      'order-42',
    ]);
  });
});
