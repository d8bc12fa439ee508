/**
 * Prometheus text exposition (version 0.0.4) for the server: request counts and latency histograms per
 * route, how queries were answered, model reloads, the loaded model and process memory. Hand-rolled: a few
 * counters do not justify a client library.
 */
const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

type Labels = Record<string, string>;
const key = (l: Labels) => JSON.stringify(Object.entries(l).sort());
const fmt = (l: Labels) => {
  const e = Object.entries(l);
  return e.length ? `{${e.map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`).join(',')}}` : '';
};

class Counter {
  private v = new Map<string, { labels: Labels; value: number }>();
  constructor(readonly name: string, readonly help: string) {}
  inc(labels: Labels = {}, by = 1): void {
    const k = key(labels);
    const e = this.v.get(k);
    if (e) e.value += by;
    else this.v.set(k, { labels, value: by });
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    for (const { labels, value } of this.v.values()) lines.push(`${this.name}${fmt(labels)} ${value}`);
    return lines.join('\n');
  }
}

class Histogram {
  private v = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();
  constructor(readonly name: string, readonly help: string) {}
  observe(labels: Labels, x: number): void {
    const k = key(labels);
    let e = this.v.get(k);
    if (!e) this.v.set(k, (e = { labels, counts: new Array(BUCKETS.length).fill(0), sum: 0, count: 0 }));
    for (let i = 0; i < BUCKETS.length; i++) if (x <= BUCKETS[i]) e.counts[i]++;
    e.sum += x;
    e.count++;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const { labels, counts, sum, count } of this.v.values()) {
      BUCKETS.forEach((b, i) => lines.push(`${this.name}_bucket${fmt({ ...labels, le: String(b) })} ${counts[i]}`));
      lines.push(`${this.name}_bucket${fmt({ ...labels, le: '+Inf' })} ${count}`, `${this.name}_sum${fmt(labels)} ${sum}`, `${this.name}_count${fmt(labels)} ${count}`);
    }
    return lines.join('\n');
  }
}

export interface ModelGauge {
  id: string;
  created: string;
  items: number;
  users: number;
  loadedAt: number;
}

export class ServerMetrics {
  readonly requests = new Counter('towerlab_http_requests_total', 'HTTP requests by route and status code.');
  readonly latency = new Histogram('towerlab_http_request_duration_seconds', 'Time from request received to response sent.');
  readonly answers = new Counter('towerlab_answers_total', 'Answered queries by endpoint, source (model or popularity fallback) and search method.');
  readonly reloads = new Counter('towerlab_model_reloads_total', 'Model reload attempts by result.');
  private readonly started = Date.now();

  render(model: ModelGauge | null, reloading: boolean): string {
    const mem = process.memoryUsage();
    const g = (name: string, help: string, value: number, labels: Labels = {}) => `# HELP ${name} ${help}\n# TYPE ${name} gauge\n${name}${fmt(labels)} ${value}`;
    const parts = [this.requests.render(), this.latency.render(), this.answers.render(), this.reloads.render()];
    if (model) {
      parts.push(
        g('towerlab_model_info', 'The bundle being served.', 1, { id: model.id, created: model.created }),
        g('towerlab_model_items', 'Items in the served model.', model.items),
        g('towerlab_model_users', 'Users in the served model.', model.users),
        g('towerlab_model_loaded_timestamp_seconds', 'When the served bundle was loaded.', model.loadedAt / 1000),
      );
    }
    parts.push(
      g('towerlab_model_reloading', '1 while a new bundle is being loaded.', reloading ? 1 : 0),
      g('process_resident_memory_bytes', 'Resident set size.', mem.rss),
      g('nodejs_heap_used_bytes', 'V8 heap in use.', mem.heapUsed),
      g('nodejs_external_memory_bytes', 'Memory held outside the V8 heap (typed arrays, the index).', mem.external + mem.arrayBuffers),
      g('process_uptime_seconds', 'Seconds since the server started.', (Date.now() - this.started) / 1000),
    );
    return parts.join('\n') + '\n';
  }
}
