import { readFileSync } from 'node:fs';
import t from 'tap';
import { Metrics } from '../../../src/metrics/metrics.js';

t.test('the Grafana dashboard only queries metrics the gateway exports', async (t) => {
  const d = JSON.parse(readFileSync('deploy/grafana/gatehouse-dashboard.json', 'utf8')) as { panels: { title: string; targets: { expr: string }[] }[] };
  const names = new Set((await new Metrics({ defaults: false }).registry.getMetricsAsJSON()).map((m) => m.name));
  const titles = d.panels.map((p) => p.title).join('\n');
  for (const want of [/route and decision/, /[Ll]atency quantiles/, /[Aa]uth failures by reason/, /[Uu]pstream errors/, /expiring within 30 days/]) t.match(titles, want);
  for (const p of d.panels) {
    for (const target of p.targets) {
      for (const m of target.expr.match(/gatehouse_[a-z_]+/g) ?? []) t.ok(names.has(m.replace(/_(bucket|count|sum)$/, '')), `${p.title}: ${m} exists`);
    }
  }
});
