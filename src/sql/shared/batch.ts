/**
 * Chunked batch writer: writes many rows in chunks, each chunk its own transaction.
 * NOT atomic across chunks — earlier chunks stay committed when a later one fails; the
 * result (or the BatchError) says where to resume.
 */
import type { Database } from '../../core/database.js';
import { InvalidOptionError, TxkitError } from '../../core/errors.js';
import type { Params } from '../../core/resource.js';
import type { Transaction } from '../../core/transaction.js';

export interface BatchOptions<Row> {
  /** SQL run once per row with the row as its parameters, or a function that writes one row. */
  statement: string | ((tx: Transaction, row: Row, index: number) => unknown);
  /** Rows per transaction. Default 1000. */
  chunkSize?: number;
  /**
   * `'abort'` (default): a failing row rolls back its whole chunk and the batch stops there.
   * `'skipRow'`: each row runs in its own savepoint; failing rows are skipped and reported.
   */
  mode?: 'abort' | 'skipRow';
  /** Called after each chunk commits with the number of rows committed so far. */
  onChunkCommitted?: (committedSoFar: number) => void;
}

export interface BatchFailure {
  index: number;
  error: unknown;
}

export interface BatchResult {
  /** Rows committed. */
  committed: number;
  /** Rows skipped in `skipRow` mode, with their errors. */
  failed: BatchFailure[];
  /** Chunks committed. */
  chunks: number;
}

/** The batch stopped at a failing chunk; rows before `resumeAt` are committed. */
export class BatchError extends TxkitError {
  constructor(
    message: string,
    readonly result: BatchResult,
    readonly resumeAt: number,
    cause: unknown,
  ) {
    super('E_BATCH', message, { cause });
  }
}

/**
 * @example
 * const result = await batch(db, users, {
 *   statement: 'INSERT INTO users(name, email) VALUES (:name, :email)',
 *   chunkSize: 500,
 *   mode: 'skipRow',
 * });
 */
export async function batch<Row>(
  db: Database,
  rows: readonly Row[],
  options: BatchOptions<Row>,
): Promise<BatchResult> {
  if (!Array.isArray(rows)) throw new InvalidOptionError('batch() needs an array of rows');
  const { statement, mode = 'abort', onChunkCommitted } = options;
  const chunkSize = options.chunkSize ?? 1000;
  if (!Number.isInteger(chunkSize) || chunkSize < 1) {
    throw new InvalidOptionError(`chunkSize must be a positive integer, got ${String(chunkSize)}`);
  }
  if (mode !== 'abort' && mode !== 'skipRow') {
    throw new InvalidOptionError(`mode must be 'abort' or 'skipRow', got ${JSON.stringify(mode)}`);
  }
  if (typeof statement !== 'string' && typeof statement !== 'function') {
    throw new InvalidOptionError('statement must be a SQL string or a function (tx, row, index) => …');
  }
  const writeRow = (tx: Transaction, row: Row, index: number) =>
    typeof statement === 'string' ? tx.execute(statement, row as Params) : statement(tx, row, index);

  const result: BatchResult = { committed: 0, failed: [], chunks: 0 };
  for (let start = 0; start < rows.length; start += chunkSize) {
    const end = Math.min(start + chunkSize, rows.length);
    const failed: BatchFailure[] = [];
    try {
      await db.transaction(async (tx) => {
        for (let i = start; i < end; i++) {
          if (mode === 'abort') await writeRow(tx, rows[i]!, i);
          else {
            try {
              await db.transaction((inner) => writeRow(inner, rows[i]!, i), { propagation: 'nested' });
            } catch (error) {
              failed.push({ index: i, error });
            }
          }
        }
      });
    } catch (error) {
      throw new BatchError(
        `batch stopped: the chunk of rows ${start}..${end - 1} failed and was rolled back; ${result.committed} rows before it are committed`,
        result,
        start,
        error,
      );
    }
    result.chunks++;
    result.committed += end - start - failed.length;
    result.failed.push(...failed);
    onChunkCommitted?.(result.committed);
  }
  return result;
}
