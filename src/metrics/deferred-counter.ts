/**
 * A prom-client Counter whose hot-path increments are plain additions on a
 * pre-resolved series object; they reach the Counter in its `collect()`,
 * which the registry calls on every scrape (issue 6: a prom-client `inc()`
 * re-hashes and re-validates its labels on every call, even through a cached
 * `labels()` child). The exposition stays prom-client's own.
 */
import { Counter, type OpenMetricsContentType, type PrometheusContentType, type Registry } from 'prom-client';

/** One series of a DeferredCounter: the increments not yet handed to prom-client. */
export class CounterSeries<L extends string = string> {
  pending = 0;
  constructor(readonly labels: Readonly<Record<L, string>>) {}
}

export interface DeferredCounterOptions<L extends string> {
  name: string;
  help: string;
  labelNames: readonly L[];
  registers: (Registry<PrometheusContentType> | Registry<OpenMetricsContentType>)[];
}

export class DeferredCounter<L extends string> {
  /** The registered prom-client counter; `inc()` on it directly still works. */
  readonly counter: Counter<L>;
  readonly #labelNames: readonly L[];
  readonly #series = new Map<string, CounterSeries<L>>();

  constructor(options: DeferredCounterOptions<L>) {
    this.#labelNames = options.labelNames;
    const series = this.#series;
    this.counter = new Counter<L>({
      ...options,
      // A function, not an arrow: prom-client calls collect() with the counter as `this`.
      // Synchronous, so no increment lands between the move and the registry reading the counter.
      collect(this: Counter<L>) {
        for (const s of series.values()) {
          if (s.pending > 0) {
            this.inc(s.labels, s.pending);
            s.pending = 0;
          }
        }
      },
    });
  }

  /**
   * The series for these label values, created on first use. Callers keep
   * the result and add to `pending`: this lookup builds a string key.
   */
  series(labels: Readonly<Record<L, string>>): CounterSeries<L> {
    const key = this.#labelNames.map((n) => labels[n]).join('\0');
    let s = this.#series.get(key);
    if (s === undefined) {
      s = new CounterSeries({ ...labels });
      this.#series.set(key, s);
    }
    return s;
  }
}
