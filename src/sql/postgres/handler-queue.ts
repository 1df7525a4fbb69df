/**
 * The notifier's bounded handler queue: notifications wait here for their handlers, at
 * most `maxQueue` of them, run `concurrency` at a time (1 keeps arrival order). When full,
 * the overflow policy drops the oldest or the newest, and says so. A handler's error is
 * reported and never stops the other handlers.
 */

export type OverflowPolicy = 'drop-oldest' | 'drop-newest' | 'error';

/** Upper bounds (ms) of the queue-latency histogram buckets. */
export const LATENCY_BUCKETS = [1, 5, 10, 50, 100, 500, 1000, 5000, Number.POSITIVE_INFINITY];

export interface QueueJob<N> {
  notification: N;
  handlers: ((n: N) => unknown)[];
  queuedAt: number;
}

export interface HandlerQueueHooks<N> {
  /** A job was dropped because the queue was full (`dropped` counts all drops so far). */
  overflow(job: QueueJob<N>, policy: OverflowPolicy, dropped: number): void;
  /** A handler threw or rejected. */
  handlerError(notification: N, error: unknown): void;
}

export interface HandlerQueueStats {
  handled: number;
  handlerErrors: number;
  dropped: number;
  queued: number;
  inFlight: number;
  queueLatencyMeanMs: number;
  queueLatencyMaxMs: number;
  queueLatencyHistogram: { le: number; count: number }[];
}

export class HandlerQueue<N> {
  readonly #jobs: QueueJob<N>[] = [];
  readonly #idleWaiters = new Set<() => void>();
  readonly #buckets = LATENCY_BUCKETS.map(() => 0);
  #inFlight = 0;
  #handled = 0;
  #handlerErrors = 0;
  #dropped = 0;
  #latencySum = 0;
  #latencyMax = 0;

  constructor(
    private readonly maxQueue: number,
    private readonly concurrency: number,
    private readonly policy: OverflowPolicy,
    private readonly hooks: HandlerQueueHooks<N>,
  ) {}

  push(job: QueueJob<N>): void {
    if (this.#jobs.length >= this.maxQueue) {
      this.#dropped++;
      // drop-oldest drops the oldest waiting job; the other policies drop this one.
      const dropped = this.policy === 'drop-oldest' ? this.#jobs.shift()! : job;
      this.hooks.overflow(dropped, this.policy, this.#dropped);
      if (dropped === job) return;
    }
    this.#jobs.push(job);
    this.#pump();
  }

  /** Drops the jobs not yet started; returns how many. */
  clear(): number {
    const n = this.#jobs.length;
    this.#jobs.length = 0;
    this.#dropped += n;
    return n;
  }

  /** Resolves when nothing runs and nothing waits. */
  idle(): Promise<void> {
    if (this.#inFlight === 0 && this.#jobs.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.add(resolve));
  }

  /** Resolves when running handlers finish, or after `ms`, whichever is first. */
  async settle(ms: number): Promise<void> {
    if (this.#inFlight === 0) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      t.unref?.();
      this.#idleWaiters.add(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  stats(): HandlerQueueStats {
    return {
      handled: this.#handled,
      handlerErrors: this.#handlerErrors,
      dropped: this.#dropped,
      queued: this.#jobs.length,
      inFlight: this.#inFlight,
      queueLatencyMeanMs: this.#handled === 0 ? 0 : this.#latencySum / this.#handled,
      queueLatencyMaxMs: this.#latencyMax,
      queueLatencyHistogram: LATENCY_BUCKETS.map((le, i) => ({
        le,
        count: this.#buckets.slice(0, i + 1).reduce((a, b) => a + b, 0),
      })),
    };
  }

  #pump(): void {
    while (this.#inFlight < this.concurrency && this.#jobs.length > 0) {
      const job = this.#jobs.shift()!;
      this.#inFlight++;
      void this.#run(job).finally(() => {
        this.#inFlight--;
        if (this.#inFlight === 0 && this.#jobs.length === 0) {
          for (const w of this.#idleWaiters) w();
          this.#idleWaiters.clear();
        }
        this.#pump();
      });
    }
  }

  async #run(job: QueueJob<N>): Promise<void> {
    const waited = performance.now() - job.queuedAt;
    this.#latencySum += waited;
    this.#buckets[LATENCY_BUCKETS.findIndex((le) => waited <= le)]!++;
    if (waited > this.#latencyMax) this.#latencyMax = waited;
    await Promise.all(
      job.handlers.map(async (handler) => {
        try {
          await handler(job.notification);
        } catch (error) {
          this.#handlerErrors++;
          this.hooks.handlerError(job.notification, error);
        }
      }),
    );
    this.#handled++;
  }
}
