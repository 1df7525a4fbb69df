/**
 * Events of the Redis area, published on `node:diagnostics_channel` as `txkit:redis:<event>`
 * and to listeners added with `redisTx(...).events.on(event, listener)`.
 */
export type TxStatus = 'committed' | 'conflict' | 'exec-abort' | 'unknown';

export interface RedisEvents {
  /** One MULTI/EXEC finished (or was refused by the server, or its outcome is unknown). */
  exec: {
    txId: string;
    name?: string | undefined;
    status: TxStatus;
    commands: number;
    /** Commands that failed at run time while the others were applied. */
    failed: number;
    durationMs: number;
  };
  /** One attempt of an optimistic transaction ended. */
  attempt: {
    txId: string;
    name?: string | undefined;
    attempt: number;
    outcome: 'committed' | 'conflict' | 'voided' | 'aborted' | 'error' | 'unknown';
  };
  /** The optimistic runner waits before the next attempt. */
  retry: { txId: string; name?: string | undefined; attempt: number; delayMs: number; error: unknown };
  /** The optimistic runner gave up because every attempt met a conflict. */
  'conflict-exhausted': { txId: string; name?: string | undefined; attempts: number };
  /** EVALSHA answered NOSCRIPT and the script was sent again with EVAL. */
  noscript: { script: string };
  /** One pipeline batch was sent. */
  'pipeline-batch': { size: number; failed: number; unknown: number; notAttempted: number };
  /** A listener or a background task failed. */
  error: { source: string; error: unknown };
}
