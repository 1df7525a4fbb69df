/**
 * An async iterator over the notifications of one channel: a bounded buffer between the
 * listener connection (push) and a `for await` loop (pull). `break`/`return()`
 * unsubscribes; an AbortSignal ends it with `TransactionCancelledError`.
 */
import { TransactionCancelledError } from '../../core/errors.js';

/** What the iterator needs from a notifier: a subscription that pushes into it. */
export type Subscribe<N> = (push: (n: N) => void, onEnd: () => void) => Promise<() => Promise<void>>;

/** An async iterator over one channel; `ready` resolves once LISTEN is in effect. */
export interface NotificationIterator<N> extends AsyncIterableIterator<N> {
  readonly ready: Promise<void>;
}

/**
 * @param maxBuffer unread notifications kept; the oldest is dropped beyond it (`onDrop`)
 */
export function notificationIterator<N>(
  subscribe: Subscribe<N>,
  options: { signal?: AbortSignal | undefined; maxBuffer: number; onDrop: () => void },
): NotificationIterator<N> {
  const buffer: N[] = [];
  let pending: { resolve: (r: IteratorResult<N>) => void; reject: (e: unknown) => void } | undefined;
  let finished = false;
  let failure: unknown;
  let unsubscribe: (() => Promise<void>) | undefined;

  const push = (n: N): void => {
    if (pending) {
      const p = pending;
      pending = undefined;
      p.resolve({ value: n, done: false });
      return;
    }
    if (buffer.length >= options.maxBuffer) {
      buffer.shift();
      options.onDrop();
    }
    buffer.push(n);
  };
  const end = (err?: unknown): void => {
    if (finished) return;
    finished = true;
    failure = err;
    options.signal?.removeEventListener('abort', onAbort);
    if (pending) {
      const p = pending;
      pending = undefined;
      if (err === undefined) p.resolve({ value: undefined, done: true });
      else p.reject(err);
    }
  };
  const onAbort = (): void => {
    end(new TransactionCancelledError('notification iterator cancelled', { cause: options.signal?.reason }));
    void ready.then(() => unsubscribe?.()).catch(() => {});
  };
  const ready = subscribe(push, () => end()).then((u) => {
    unsubscribe = u;
  });
  ready.catch((err) => end(err));
  if (options.signal?.aborted) onAbort();
  else options.signal?.addEventListener('abort', onAbort, { once: true });

  const iterator: NotificationIterator<N> = {
    ready,
    next: () => {
      if (buffer.length > 0) return Promise.resolve({ value: buffer.shift()!, done: false });
      if (finished) {
        return failure === undefined
          ? Promise.resolve({ value: undefined, done: true })
          : Promise.reject(failure);
      }
      return new Promise((resolve, reject) => {
        pending = { resolve, reject };
      });
    },
    return: async () => {
      end();
      await ready.catch(() => {});
      await unsubscribe?.();
      return { value: undefined, done: true };
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return iterator;
}
