import { Histogram, Registry, type RegistryContentType } from 'prom-client';
import t from 'tap';
import { AggregatedHistogram } from '../../../src/metrics/aggregated-histogram.js';
import { LATENCY_BUCKETS } from '../../../src/metrics/metrics.js';
import { seededRandom } from '../../helpers/random.js';

const NAME = 'test_duration_seconds';
const HELP = 'A "help" text with \\ and\nnewline.';

function pair(type: RegistryContentType = Registry.PROMETHEUS_CONTENT_TYPE): { agg: AggregatedHistogram<'route'>; ref: Histogram<'route'>; aggRegistry: Registry<RegistryContentType>; refRegistry: Registry<RegistryContentType> } {
  const aggRegistry = new Registry<RegistryContentType>();
  const refRegistry = new Registry<RegistryContentType>();
  aggRegistry.setContentType(type);
  refRegistry.setContentType(type);
  const agg = new AggregatedHistogram({ name: NAME, help: HELP, labelNames: ['route'] as const, buckets: LATENCY_BUCKETS, registers: [aggRegistry] });
  const ref = new Histogram({ name: NAME, help: HELP, labelNames: ['route'] as const, buckets: LATENCY_BUCKETS, registers: [refRegistry] });
  return { agg, ref, aggRegistry, refRegistry };
}

t.test('AggregatedHistogram counts known durations into the right buckets', async (t) => {
  const { agg, aggRegistry } = pair();
  const s = agg.series({ route: 'a' });
  // On a bound (le is inclusive), just above one, the first and last buckets, beyond every bound, negative.
  for (const v of [0.0005, 0.0005001, 0.0001, 0.003, 0.003, 0.01, 0.7, 30, 30.5, 1000, -1]) s.observe(v);
  const json = (await aggRegistry.getMetricsAsJSON())[0]!;
  const got = new Map(json.values.map((v) => [`${(v as { metricName?: string }).metricName}${JSON.stringify(v.labels)}`, v.value]));
  const bucket = (le: number | string) => got.get(`${NAME}_bucket${JSON.stringify({ le, route: 'a' })}`);
  t.equal(bucket(0.0005), 3, '-1, 0.0001, 0.0005');
  t.equal(bucket(0.001), 4);
  t.equal(bucket(0.0025), 4);
  t.equal(bucket(0.005), 6);
  t.equal(bucket(0.01), 7);
  t.equal(bucket(0.5), 7);
  t.equal(bucket(1), 8);
  t.equal(bucket(30), 9);
  t.equal(bucket('+Inf'), 11);
  t.equal(got.get(`${NAME}_count{"route":"a"}`), 11);
  const sum = 0.0005 + 0.0005001 + 0.0001 + 0.003 + 0.003 + 0.01 + 0.7 + 30 + 30.5 + 1000 - 1;
  t.equal(got.get(`${NAME}_sum{"route":"a"}`), sum, 'summed in observation order, as prom-client does');
  const text = await aggRegistry.metrics();
  t.match(text, `${NAME}_bucket{le="0.0025",route="a"} 4\n`);
  t.match(text, `${NAME}_bucket{le="+Inf",route="a"} 11\n${NAME}_sum{route="a"} ${sum}\n${NAME}_count{route="a"} 11\n`);
});

for (const type of [Registry.PROMETHEUS_CONTENT_TYPE, Registry.OPENMETRICS_CONTENT_TYPE]) {
  t.test(`AggregatedHistogram exposition is byte-for-byte that of a prom-client Histogram fed the same values (${type})`, async (t) => {
    const { agg, ref, aggRegistry, refRegistry } = pair(type);
    const next = seededRandom(6);
    // Label values that need escaping; series made on first use, as the observer does.
    const routes = ['plain', 'quote"d', 'back\\slash', 'new\nline', 'ünïcode'];
    for (let i = 0; i < 5000; i++) {
      const route = routes[Math.floor(next() * next() * routes.length)]!;
      // Mostly milliseconds, some on the bounds exactly, some beyond the last one.
      const v = i % 97 === 0 ? LATENCY_BUCKETS[i % LATENCY_BUCKETS.length]! : i % 89 === 0 ? 40 + next() : next() ** 4 * 2;
      agg.series({ route }).observe(v);
      ref.observe({ route }, v);
    }
    const text = await aggRegistry.metrics();
    t.equal(text, await refRegistry.metrics(), 'the text exposition');
    t.match(text, 'route="quote\\"d"', 'label values escaped by prom-client');
    // prom-client also sets `exemplar` (null or undefined), which nothing reads without exemplars enabled.
    const plain = (ms: { values: object[] }[]) => ms.map((m) => ({ ...m, values: m.values.map(({ exemplar: _, ...v }: { exemplar?: unknown }) => v) }));
    t.same(plain(await aggRegistry.getMetricsAsJSON()), plain(await refRegistry.getMetricsAsJSON()), 'getMetricsAsJSON()');
  });
}

t.test('AggregatedHistogram shows a series from its first recorded value on, and never records a non-finite one', async (t) => {
  const { agg, aggRegistry } = pair();
  const s = agg.series({ route: 'a' });
  t.equal(await aggRegistry.metrics(), `# HELP ${NAME} A "help" text with \\\\ and\\nnewline.\n# TYPE ${NAME} histogram\n`, 'no series yet');
  s.observe(Number.NaN);
  s.observe(Number.POSITIVE_INFINITY);
  t.notMatch(await aggRegistry.metrics(), 'route="a"', 'prom-client would have thrown and recorded nothing');
  s.observe(0.002);
  t.match(await aggRegistry.metrics(), `${NAME}_count{route="a"} 1\n`);
  t.equal(agg.series({ route: 'a' }), s, 'one series object per label set');
  aggRegistry.resetMetrics();
  t.notMatch(await aggRegistry.metrics(), 'route="a"', 'reset, as Histogram#reset()');
  s.observe(0.002);
  t.match(await aggRegistry.metrics(), `${NAME}_bucket{le="0.001",route="a"} 0\n${NAME}_bucket{le="0.0025",route="a"} 1\n`);
});

t.test('AggregatedHistogram rejects bounds that are not ascending', async (t) => {
  t.throws(() => new AggregatedHistogram({ name: 'x', help: 'x', labelNames: [], buckets: [1, 0.5], registers: [] }), RangeError);
});
