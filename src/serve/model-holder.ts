/**
 * The model a server answers with, and its hot reload. A new bundle is read and verified completely off to
 * the side; only then is the reference swapped, in one assignment. A request reads the reference once, so it
 * is answered wholly by the old model or wholly by the new one, never by a half-loaded one, and requests keep
 * flowing while the next bundle loads. Reloads asked for while one is running are coalesced into one more.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Backend } from '../compute/backend.ts';
import { openModel } from '../model/open.ts';
import { bundleFromDraft, readBundle, type Bundle } from '../bundle/read.ts';
import { isIvfConfig } from '../index/vector-index.ts';
import { createBundle, defaultBundleOptions } from '../bundle/write.ts';
import { BUNDLE_FORMAT, BUNDLE_MANIFEST } from '../bundle/format.ts';
import { openTextModel, textAsArtifacts, textModelDir } from '../bundle/text.ts';
import { LanceIndex } from '../index/lance-index.ts';
import { UserError } from '../util/errors.ts';
import { Recommender, type SearchMode } from './recommender.ts';

export interface ReloadResult {
  id: string;
  previous: string | null;
  changed: boolean;
  ms: number;
}

/** A bundle directory is read as is; a model (or run) directory is turned into a bundle in memory. */
export async function loadSource(source: string, backend: Backend, log: (m: string) => void = () => {}, expansionSearch?: number, nprobe?: number, verifyKey?: Buffer): Promise<Bundle> {
  const m = join(source, BUNDLE_MANIFEST);
  let isBundle = false;
  if (existsSync(m)) {
    try {
      isBundle = JSON.parse(readFileSync(m, 'utf8'))?.format === BUNDLE_FORMAT;
    } catch {
      isBundle = true; // let readBundle say what is wrong with it
    }
  }
  if (isBundle || !existsSync(source)) return readBundle(source, { expansionSearch, nprobe, verifyKey });
  // Only a bundle carries a signature: with a key, a model directory cannot be vouched for.
  if (verifyKey) throw new UserError(`${source}: not a bundle, and only signed bundles are served with --verify-key (make one with 'towerlab export --sign-key')`);
  // A text dual encoder is bundled with the documents saved with it (or the corpus it was trained on).
  const text = textModelDir(source);
  const a = text ? (({ encoder, corpus, meta }) => textAsArtifacts(encoder, corpus, meta))(openTextModel(text)) : openModel(source);
  const d = defaultBundleOptions.index;
  const index = d && (isIvfConfig(d) ? { ...d, nprobe: nprobe ?? d.nprobe } : { ...d, expansionSearch: expansionSearch ?? d.expansionSearch });
  return bundleFromDraft(createBundle(backend, a, { ...defaultBundleOptions, index, source, log }));
}

export class ModelHolder {
  private cur: Recommender | null = null;
  private loading: Promise<ReloadResult> | null = null;
  private again: Promise<ReloadResult> | null = null;
  loadedAt = 0;
  lastError: string | null = null;
  reloads = 0;

  constructor(
    readonly source: string,
    private readonly backend: Backend,
    private readonly search: SearchMode,
    private readonly log: (m: string) => void = () => {},
    private readonly onReload: (ok: boolean) => void = () => {},
    /** Overrides the index's stored HNSW search breadth (ef). */
    private readonly expansionSearch?: number,
    /** Overrides the IVF index's stored lists scanned per query (and the LanceDB table's partitions). */
    private readonly nprobe?: number,
    /** Search this LanceDB directory (export --to lancedb:DIR) instead of the bundle's own index. */
    private readonly lance?: { dir: string; refineFactor?: number },
    private readonly limits: { verifyKey?: Buffer; reloadMinIntervalMs?: number } = {},
  ) {}

  private lastStart = -Infinity;
  private scheduled: Promise<ReloadResult> | null = null;

  /**
   * A reload asked for over HTTP: rate-limited and coalesced. Requests arriving while one is scheduled share
   * it; a new reload starts at most once per `reloadMinIntervalMs` (default 1 s), so a client looping on
   * the endpoint costs at most one bundle verification per interval, whatever its request rate.
   */
  requestReload(): Promise<ReloadResult> {
    if (this.scheduled) return this.scheduled;
    const wait = Math.max(0, this.lastStart + (this.limits.reloadMinIntervalMs ?? 1000) - performance.now());
    const p = new Promise<void>((r) => (wait > 0 ? setTimeout(r, wait) : r())).then(() => {
      this.scheduled = null;
      return this.reload();
    });
    this.scheduled = p;
    return p;
  }

  /** The model to answer with; read it once per request. */
  get current(): Recommender | null {
    return this.cur;
  }

  get reloading(): boolean {
    return this.loading !== null;
  }

  /**
   * Loads the source again and swaps it in. On failure the current model stays and the error (a UserError
   * naming the bad file) is thrown to the caller. A call during a running reload waits for one more reload
   * after it (the bundle may have changed again since the running one started).
   */
  reload(): Promise<ReloadResult> {
    if (!this.loading) {
      this.loading = this.loadOnce().finally(() => {
        this.loading = null;
      });
      return this.loading;
    }
    if (!this.again) {
      const running = this.loading;
      this.again = running
        .catch(() => undefined)
        .then(() => {
          this.again = null;
          return this.reload();
        });
    }
    return this.again;
  }

  private async loadOnce(): Promise<ReloadResult> {
    const t0 = performance.now();
    this.lastStart = t0;
    const previous = this.cur?.id ?? null;
    try {
      let bundle = await loadSource(this.source, this.backend, this.log, this.expansionSearch, this.nprobe, this.limits.verifyKey);
      if (this.lance) {
        const index = LanceIndex.open(this.lance.dir, { itemIds: bundle.itemIds, dim: bundle.manifest.model.dim, nprobe: this.nprobe, refineFactor: this.lance.refineFactor });
        bundle = { ...bundle, index };
      }
      const next = new Recommender(bundle, this.backend, bundle.index ? this.search : 'exact');
      const old = this.cur?.bundle.index;
      this.cur = next; // the swap: one assignment
      // Searches are synchronous, so none is running on the old table: its worker thread can go.
      if (old instanceof LanceIndex && old !== next.bundle.index) old.close();
      this.loadedAt = Date.now();
      this.lastError = null;
      this.reloads++;
      this.onReload(true);
      return { id: next.id, previous, changed: next.id !== previous, ms: performance.now() - t0 };
    } catch (e) {
      const msg = e instanceof UserError ? e.message : `internal error while loading: ${(e as Error)?.message ?? e}`;
      this.lastError = msg;
      this.onReload(false);
      throw e instanceof UserError ? e : new UserError(msg);
    }
  }
}
