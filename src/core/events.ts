/**
 * Typed events, published on `node:diagnostics_channel` (channel `txkit:<event>`) and to
 * listeners added with `on()`. Emitting costs nothing when nobody listens. A listener that
 * throws never changes the outcome of what it observes: the error is reported on `error`.
 */
import diagnostics from 'node:diagnostics_channel';

/**
 * Why a transaction rolled back: its body threw (`error`), it was marked rollback-only, its
 * deadline passed, its signal fired, or a `db.begin()` handle was rolled back or disposed
 * uncommitted (`manual`).
 */
export type RollbackReason = 'error' | 'rollback-only' | 'timeout' | 'cancelled' | 'manual';

interface TxBase {
  txId: string;
  name?: string | undefined;
  resource: string;
}

/** The events of the transaction engine. Resources add their own with {@link EventHub}. */
export interface TxEvents {
  begin: TxBase & { isolation: string; readOnly: boolean; attempt: number };
  commit: TxBase & { durationMs: number; attempt: number };
  rollback: TxBase & { durationMs: number; reason: RollbackReason; error?: unknown; attempt: number };
  /** COMMIT was sent and the connection failed: nobody knows whether it committed. */
  unknown: TxBase & { durationMs: number; error: unknown };
  retry: TxBase & { attempt: number; delayMs: number; error: unknown };
  slow: TxBase & { durationMs: number; thresholdMs: number };
  savepoint: TxBase & { savepoint: string; action: 'create' | 'release' | 'rollback'; depth: number };
  'hook-error': TxBase & { hook: 'afterCommit' | 'afterRollback'; error: unknown };
  /** A listener or observer threw; reported here instead of changing any outcome. */
  error: { source: string; error: unknown };
}

type Listener<P> = (payload: P) => void;

/** A small typed event hub. Each instance belongs to one Database (or one resource helper). */
export class EventHub<E extends { error: { source: string; error: unknown } }> {
  readonly #listeners = new Map<keyof E, Set<Listener<any>>>();
  readonly #channels = new Map<keyof E, diagnostics.Channel>();

  constructor(private readonly prefix = 'txkit:') {}

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof E>(event: K, listener: Listener<E[K]>): () => void {
    let set = this.#listeners.get(event);
    if (!set) {
      set = new Set();
      this.#listeners.set(event, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
    };
  }

  #channel(event: keyof E): diagnostics.Channel {
    let ch = this.#channels.get(event);
    if (!ch) {
      ch = diagnostics.channel(this.prefix + String(event));
      this.#channels.set(event, ch);
    }
    return ch;
  }

  /** True when someone would see `event`: lets callers skip building a payload. */
  wants(event: keyof E): boolean {
    return (this.#listeners.get(event)?.size ?? 0) > 0 || this.#channel(event).hasSubscribers;
  }

  emit<K extends keyof E>(event: K, payload: E[K]): void {
    const ch = this.#channel(event);
    if (ch.hasSubscribers) {
      try {
        ch.publish(payload);
      } catch (error) {
        this.#report(event, error);
      }
    }
    const set = this.#listeners.get(event);
    if (!set || set.size === 0) return;
    for (const listener of set) {
      try {
        listener(payload);
      } catch (error) {
        this.#report(event, error);
      }
    }
  }

  #report(event: keyof E, error: unknown): void {
    if (event === 'error') return; // never loop
    this.emit('error', { source: `listener:${String(event)}`, error } as E['error']);
  }
}

/** Names of the diagnostics channels the engine publishes on. */
export const CHANNELS = Object.freeze({
  begin: 'txkit:begin',
  commit: 'txkit:commit',
  rollback: 'txkit:rollback',
  unknown: 'txkit:unknown',
  retry: 'txkit:retry',
  slow: 'txkit:slow',
  savepoint: 'txkit:savepoint',
  hookError: 'txkit:hook-error',
  error: 'txkit:error',
});
