/**
 * A histogram whose series are plain accumulators (count, sum, one count
 * per bucket), registered with a prom-client Registry as a custom metric.
 *
 * Why not a prom-client Histogram fed at scrape, like DeferredCounter: a
 * Histogram (prom-client 15) has no public way to add aggregated bucket
 * counts — only observe(value), which costs a label hash, a validation and a
 * bucket search per value (issue 6). So this class answers the registry the
 * way a Histogram does: `get()` returns the same shape as Histogram#get()
 * (`_bucket` values with a cumulative `le` per bound and `+Inf`, then `_sum`
 * and `_count`), and the registry writes the text — HELP/TYPE lines, label
 * escaping and number formatting stay prom-client's. The registry only
 * duck-types its metrics (name, help, type, get(), reset());
 * test/unit/metrics/aggregated-histogram.test.ts pins the exposition to a
 * real Histogram's, byte for byte.
 */
import type { Histogram, LabelValues, MetricObjectWithValues, MetricValueWithName, OpenMetricsContentType, PrometheusContentType, Registry } from 'prom-client';

/** One series: the numbers a prom-client Histogram keeps per label set. */
export class HistogramSeries<L extends string = string> {
  count = 0;
  sum = 0;
  /** Observations per bucket (not cumulative); the last slot is above every bound (+Inf). */
  readonly buckets: Float64Array;
  readonly #bounds: Float64Array;

  constructor(
    readonly labels: Readonly<Record<L, string>>,
    bounds: Float64Array,
  ) {
    this.#bounds = bounds;
    this.buckets = new Float64Array(bounds.length + 1);
  }

  /** Records one value, as Histogram#observe does (`value <= bound` picks the bucket). */
  observe(value: number): void {
    // prom-client throws on a non-finite value and records nothing; the observer must not throw.
    if (!Number.isFinite(value)) return;
    const bounds = this.#bounds;
    let i = 0;
    while (i < bounds.length && value > (bounds[i] as number)) i++;
    this.buckets[i] = (this.buckets[i] as number) + 1;
    this.count++;
    this.sum += value;
  }

  reset(): void {
    this.buckets.fill(0);
    this.count = 0;
    this.sum = 0;
  }
}

export interface AggregatedHistogramOptions<L extends string> {
  name: string;
  help: string;
  labelNames: readonly L[];
  /** Upper bounds, ascending, as for a prom-client Histogram. */
  buckets: readonly number[];
  registers: (Registry<PrometheusContentType> | Registry<OpenMetricsContentType>)[];
}

type Values<L extends string> = MetricValueWithName<L | 'le'>[];

export class AggregatedHistogram<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  /** How prom-client's AggregatorRegistry merges cluster workers' values: as for a Histogram. */
  readonly aggregator = 'sum';
  readonly #labelNames: readonly L[];
  readonly #bounds: Float64Array;
  readonly #series = new Map<string, HistogramSeries<L>>();

  constructor(options: AggregatedHistogramOptions<L>) {
    this.name = options.name;
    this.help = options.help;
    this.#labelNames = options.labelNames;
    const bounds = [...options.buckets];
    if (bounds.some((b, i) => !Number.isFinite(b) || (i > 0 && b <= (bounds[i - 1] as number)))) {
      throw new RangeError(`Cannot create histogram "${options.name}": buckets must be finite and ascending`);
    }
    this.#bounds = Float64Array.from(bounds);
    // The registry's TS signature names only prom-client's own classes; it
    // reads name, help, type, aggregator, get() and reset() (see the file comment).
    for (const r of options.registers) r.registerMetric(this as unknown as Histogram<L>);
  }

  /**
   * The series for these label values, created on first use. Callers keep
   * the result and call `observe()` on it: this lookup builds a string key.
   */
  series(labels: Readonly<Record<L, string>>): HistogramSeries<L> {
    const key = this.#labelNames.map((n) => labels[n]).join('\0');
    let s = this.#series.get(key);
    if (s === undefined) {
      s = new HistogramSeries<L>({ ...labels }, this.#bounds);
      this.#series.set(key, s);
    }
    return s;
  }

  /** What Histogram#get() returns: per series, the cumulative buckets, +Inf, _sum and _count. */
  get(): Promise<MetricObjectWithValues<MetricValueWithName<L | 'le'>>> {
    const bucket = `${this.name}_bucket`;
    const values: Values<L> = [];
    for (const s of this.#series.values()) {
      // A Histogram shows a series from its first recorded value on (a non-finite one is not recorded).
      if (s.count === 0) continue;
      let acc = 0;
      for (let i = 0; i < this.#bounds.length; i++) {
        acc += s.buckets[i] as number;
        values.push({ labels: withLe(this.#bounds[i] as number, s.labels), value: acc, metricName: bucket });
      }
      values.push({ labels: withLe('+Inf', s.labels), value: s.count, metricName: bucket });
      values.push({ labels: { ...s.labels } as LabelValues<L | 'le'>, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { ...s.labels } as LabelValues<L | 'le'>, value: s.count, metricName: `${this.name}_count` });
    }
    // The object a Histogram returns; prom-client types `type` as an enum but writes the string.
    const metric = { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
    return Promise.resolve(metric as unknown as MetricObjectWithValues<MetricValueWithName<L | 'le'>>);
  }

  /**
   * Registry#resetMetrics(): every series back to zero. Callers keep their
   * series objects, so they stay; a series is shown again from its next value,
   * as after Histogram#reset().
   */
  reset(): void {
    for (const s of this.#series.values()) s.reset();
  }
}

/** `le` first, then the series labels: the order Histogram#get() gives. */
function withLe<L extends string>(le: number | string, labels: Readonly<Record<L, string>>): LabelValues<L | 'le'> {
  return { le, ...labels } as LabelValues<L | 'le'>;
}
