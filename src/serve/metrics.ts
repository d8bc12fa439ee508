/**
 * The server's Prometheus metrics, through prom-client: request counts and latency histograms per route, how
 * queries were answered, model reloads and the loaded model, plus prom-client's default process and Node.js
 * metrics (CPU, resident memory, heap spaces, GC durations, event-loop lag, open handles).
 * Each server has its own registry (several servers in one process, as in the tests, stay apart). With
 * `serve --workers N` each worker keeps its own registry and answers /metrics for itself; every series then
 * carries a `worker` label (the worker's pid), so scraping the shared port several times can be summed.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export interface ModelGauge {
  id: string;
  created: string;
  items: number;
  users: number;
  loadedAt: number;
}

export interface MetricsOptions {
  /** Label every series with this worker id (serve --workers). */
  worker?: string;
  /** prom-client's default process / Node.js metrics (default true). */
  defaults?: boolean;
}

export class ServerMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'route' | 'status'>;
  readonly latency: Histogram<'route'>;
  private readonly answers: Counter<'endpoint' | 'source' | 'search'>;
  readonly reloads: Counter<'result'>;
  private readonly modelInfo: Gauge<'id' | 'created'>;
  private readonly modelItems: Gauge;
  private readonly modelUsers: Gauge;
  private readonly modelLoaded: Gauge;
  private readonly reloading: Gauge;
  private readonly started = Date.now();

  constructor(opts: MetricsOptions = {}) {
    const registers = [this.registry];
    if (opts.worker !== undefined) this.registry.setDefaultLabels({ worker: opts.worker });
    // The two per-request counters are tallied in plain maps (request(), answer()) and copied into
    // prom-client when scraped: a request then costs no label hashing or string building.
    const tallies = this;
    this.requests = new Counter({
      name: 'towerlab_http_requests_total',
      help: 'HTTP requests by route and status code.',
      labelNames: ['route', 'status'],
      registers,
      collect() {
        this.reset();
        for (const [route, byStatus] of tallies.requestTally) for (const [status, n] of byStatus) this.inc({ route, status: String(status) }, n);
      },
    });
    this.latency = new Histogram({ name: 'towerlab_http_request_duration_seconds', help: 'Time from request received to response sent.', labelNames: ['route'], buckets: BUCKETS, registers });
    this.answers = new Counter({
      name: 'towerlab_answers_total',
      help: 'Answered queries by endpoint, source (model or popularity fallback) and search method.',
      labelNames: ['endpoint', 'source', 'search'],
      registers,
      collect() {
        this.reset();
        for (const [endpoint, bySource] of tallies.answerTally) for (const [source, bySearch] of bySource) for (const [search, n] of bySearch) this.inc({ endpoint, source, search }, n);
      },
    });
    this.reloads = new Counter({ name: 'towerlab_model_reloads_total', help: 'Model reload attempts by result.', labelNames: ['result'], registers });
    this.modelInfo = new Gauge({ name: 'towerlab_model_info', help: 'The bundle being served.', labelNames: ['id', 'created'], registers });
    this.modelItems = new Gauge({ name: 'towerlab_model_items', help: 'Items in the served model.', registers });
    this.modelUsers = new Gauge({ name: 'towerlab_model_users', help: 'Users in the served model.', registers });
    this.modelLoaded = new Gauge({ name: 'towerlab_model_loaded_timestamp_seconds', help: 'When the served bundle was loaded.', registers });
    this.reloading = new Gauge({ name: 'towerlab_model_reloading', help: '1 while a new bundle is being loaded.', registers });
    // Kept from the hand-written exposition this replaced (dashboards may use them); the defaults add the rest.
    new Gauge({ name: 'nodejs_heap_used_bytes', help: 'V8 heap in use.', registers, collect() { this.set(process.memoryUsage().heapUsed); } });
    const started = this.started;
    new Gauge({ name: 'process_uptime_seconds', help: 'Seconds since the server started.', registers, collect() { this.set((Date.now() - started) / 1000); } });
    if (opts.defaults !== false) collectDefaultMetrics({ register: this.registry });
  }

  private readonly requestTally = new Map<string, Map<number, number>>();
  private readonly answerTally = new Map<string, Map<string, Map<string, number>>>();
  private readonly latencyHandles = new Map<string, { observe(v: number): void }>();

  /** One answered HTTP request: counted by route and status, its latency observed. */
  request(route: string, status: number, seconds: number): void {
    let byStatus = this.requestTally.get(route);
    if (!byStatus) this.requestTally.set(route, (byStatus = new Map()));
    byStatus.set(status, (byStatus.get(status) ?? 0) + 1);
    // The histogram's handle per route is made once: an observation passes no label object.
    let latency = this.latencyHandles.get(route);
    if (!latency) this.latencyHandles.set(route, (latency = this.latency.labels(route)));
    latency.observe(seconds);
  }

  /** One answered query, by endpoint, source (model or popularity) and search method. */
  answer(endpoint: string, source: string, search: string): void {
    let bySource = this.answerTally.get(endpoint);
    if (!bySource) this.answerTally.set(endpoint, (bySource = new Map()));
    let bySearch = bySource.get(source);
    if (!bySearch) bySource.set(source, (bySearch = new Map()));
    bySearch.set(search, (bySearch.get(search) ?? 0) + 1);
  }

  /** Content-Type of the exposition. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text, with the model gauges set from `model` first. */
  async render(model: ModelGauge | null, reloading: boolean): Promise<string> {
    this.modelInfo.reset();
    this.modelItems.reset();
    this.modelUsers.reset();
    this.modelLoaded.reset();
    if (model) {
      this.modelInfo.set({ id: model.id, created: model.created }, 1);
      this.modelItems.set(model.items);
      this.modelUsers.set(model.users);
      this.modelLoaded.set(model.loadedAt / 1000);
    }
    this.reloading.set(reloading ? 1 : 0);
    return this.registry.metrics();
  }
}
