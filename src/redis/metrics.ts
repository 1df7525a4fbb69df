/**
 * In-process Redis transaction metrics with fixed memory: counters and fixed-bucket
 * histograms, named after the spec's prom-client names (`redis_tx_total`, …). Labels are
 * low-cardinality by construction: operation names and statuses, never keys.
 */

/** Histogram bucket upper bounds per metric (the last bucket is +Inf). */
const BUCKETS: Record<string, readonly number[]> = {
  redis_tx_attempts: [1, 2, 3, 5, 10, 20, 50],
  redis_tx_duration_seconds: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
  redis_pipeline_batch_size: [1, 10, 50, 100, 250, 500, 1000, 5000, 10_000],
};

export interface HistogramSnapshot {
  count: number;
  sum: number;
  /** Cumulative counts per upper bound; `Infinity` holds the total. */
  buckets: Array<[number, number]>;
}

export interface MetricsSnapshot {
  /** Keyed `name{label="value",…}`. */
  counters: Record<string, number>;
  histograms: Record<string, HistogramSnapshot>;
}

/** `name{a="x",b="y"}` with labels in sorted order (built on every hot-path call, so no array sort). */
function seriesKey(name: string, labels?: Record<string, string>): string {
  if (!labels) return name;
  const keys = Object.keys(labels);
  if (keys.length > 1) keys.sort();
  let out = `${name}{`;
  for (let i = 0; i < keys.length; i++) out += `${i ? ',' : ''}${keys[i]}="${labels[keys[i]!]}"`;
  return `${out}}`;
}

/** Counters and histograms for one `redisTx` instance. */
export class RedisMetrics {
  readonly #counters = new Map<string, number>();
  readonly #keys2 = new Map<string, Map<string, Map<string, string>>>();
  readonly #histograms = new Map<string, { bounds: readonly number[]; counts: number[]; sum: number }>();

  /** Adds `by` (default 1) to a counter. */
  inc(name: string, labels?: Record<string, string>, by = 1): void {
    const key = seriesKey(name, labels);
    this.#counters.set(key, (this.#counters.get(key) ?? 0) + by);
  }

  /** `inc` for a two-label series on a hot path: the series name is built once per label pair. */
  inc2(name: string, l1: string, v1: string, l2: string, v2: string): void {
    const key = this.#cachedKey(name, l1, v1, l2, v2);
    this.#counters.set(key, (this.#counters.get(key) ?? 0) + 1);
  }

  /** `seriesKey(name, { [l1]: v1, [l2]: v2 })` (or one label without `l2`), built once. */
  #cachedKey(name: string, l1: string, v1: string, l2?: string, v2 = ''): string {
    let byV1 = this.#keys2.get(name);
    if (!byV1) {
      byV1 = new Map();
      this.#keys2.set(name, byV1);
    }
    let byV2 = byV1.get(v1);
    if (!byV2) {
      byV2 = new Map();
      byV1.set(v1, byV2);
    }
    let key = byV2.get(v2);
    if (key === undefined) {
      key = seriesKey(name, l2 === undefined ? { [l1]: v1 } : { [l1]: v1, [l2]: v2 });
      byV2.set(v2, key);
    }
    return key;
  }

  /**
   * Records one observation in a histogram; a string `op` stands for `{ op }` (the hot
   * path: its series name is built once).
   */
  observe(name: string, value: number, labels?: Record<string, string> | string): void {
    const key = typeof labels === 'string' ? this.#cachedKey(name, 'op', labels) : seriesKey(name, labels);
    let h = this.#histograms.get(key);
    if (!h) {
      const bounds = BUCKETS[name] ?? [1, 10, 100, 1000];
      h = { bounds, counts: new Array(bounds.length + 1).fill(0), sum: 0 };
      this.#histograms.set(key, h);
    }
    let i = 0;
    while (i < h.bounds.length && value > h.bounds[i]!) i++;
    h.counts[i]!++;
    h.sum += value;
  }

  /** Current value of one counter series (0 if never incremented). */
  counter(name: string, labels?: Record<string, string>): number {
    return this.#counters.get(seriesKey(name, labels)) ?? 0;
  }

  /** A copy of every series. */
  snapshot(): MetricsSnapshot {
    const histograms: Record<string, HistogramSnapshot> = {};
    for (const [key, h] of this.#histograms) {
      let running = 0;
      const buckets: Array<[number, number]> = h.bounds.map((b, i) => {
        running += h.counts[i]!;
        return [b, running];
      });
      running += h.counts[h.bounds.length]!;
      buckets.push([Number.POSITIVE_INFINITY, running]);
      histograms[key] = { count: running, sum: h.sum, buckets };
    }
    return { counters: Object.fromEntries(this.#counters), histograms };
  }
}
