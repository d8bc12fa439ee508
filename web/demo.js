// Towerlab demo page: loads the bundle's TF.js weights (model.json + binary tables), runs the user/query tower
// in the browser with tfjs-core ops, ranks every item exactly, and shows the server's /recommend answer next
// to it. Mirrors src/bundle/query-tower.ts: [id row ‖ feature rows ‖ dense projections] → MLP (ReLU between layers) → L2 norm.
/* global tf */

const $ = (id) => document.getElementById(id);
const state = { ready: false };

function setStatus(text, kind = 'ok') {
  $('status').textContent = text;
  $('status').dataset.state = kind;
}

async function getJson(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.json();
}

async function load() {
  await tf.setBackend('cpu');
  const health = await getJson('/health');
  const id = health.model.id;
  const base = `/bundle/${id}/`;
  const manifest = await getJson(base + 'manifest.json');
  if (manifest.model.text) return loadText(manifest, id, health);
  const [mj, users, items, feats, names, seen] = await Promise.all([
    getJson(base + 'model.json'),
    getJson(base + 'vocab/users.json'),
    getJson(base + 'vocab/items.json'),
    getJson(base + 'vocab/features.json'),
    // Display names, when the bundle was exported with --item-names.
    manifest.vocabularies.itemNames ? getJson(base + manifest.vocabularies.itemNames.file) : null,
    loadSeen(base, manifest),
  ]);
  const topo = mj.modelTopology;
  const uc = topo.user;
  const wanted = ['user.id.emb', 'user.id.mean', 'item.embeddings'];
  uc.features.forEach((_, f) => wanted.push(`user.feature${f}.emb`, `user.feature${f}.values`));
  (uc.dense ?? []).forEach((_, k) => wanted.push(`user.dense${k}.w`, `user.dense${k}.b`, `user.dense${k}.values`));
  uc.mlp.forEach((_, l) => wanted.push(`user.mlp${l}.w`, `user.mlp${l}.b`));
  feats.item.forEach((_, f) => wanted.push(`item.feature${f}.values`));
  // Fetches only the weight groups holding these names (the item tower's own tables stay on the server).
  const W = await tf.io.loadWeights(mj.weightsManifest, base, wanted);
  Object.assign(state, {
    id, W, uc, users, items, feats, names, seen, dim: topo.dim,
    // A sequence model's history queries need its SASRec tower, which runs on the server only.
    seqHistory: topo.historyQuery === 'sequence-tower',
    userIndex: new Map(users.map((u, i) => [u, i])),
    itemIndex: new Map(items.map((t, i) => [t, i])),
    userFeatValues: uc.features.map((_, f) => W[`user.feature${f}.values`].dataSync()),
    itemFeatValues: feats.item.map((_, f) => W[`item.feature${f}.values`].dataSync()),
  });
  buildControls();
  $('model-info').textContent = `bundle ${id} · ${users.length} users · ${items.length} items · dim ${topo.dim} · created ${health.model.created}`;
  state.ready = true;
  $('go').disabled = false;
  setStatus('Ready: the query tower runs in this browser.', 'ready');
}

/**
 * A text dual encoder's bundle: the query text is embedded and searched on the server (POST /search); the
 * page shows the documents. The recommendation form stays hidden (its queries do not apply).
 */
function loadText(manifest, id, health) {
  const t = manifest.model.text;
  for (const el of document.querySelectorAll('section.query, section.results, #agreement')) el.hidden = true;
  $('text-search').hidden = false;
  document.querySelector('h1 span').textContent = 'text retrieval';
  $('model-info').textContent = `bundle ${id} · text ${t.config.tower} dual encoder · ${t.documents} documents (${t.chunks} chunks) · dim ${manifest.model.dim} · created ${health.model.created}`;
  const go = $('text-go');
  go.addEventListener('click', () => searchText().catch((e) => setStatus(e.message, 'error')));
  $('text-query').addEventListener('keydown', (e) => e.key === 'Enter' && go.click());
  go.disabled = false;
  state.ready = true;
  setStatus('Ready: type a query.', 'ready');
}

async function searchText() {
  const query = $('text-query').value;
  const k = Math.max(1, Math.min(100, Number($('text-k').value) || 10));
  setStatus('Searching…', 'busy');
  const r = await fetch('/search', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, k }) });
  const res = await r.json();
  if (!r.ok) {
    $('text-results').replaceChildren();
    $('text-note').textContent = `HTTP ${r.status}: ${res.message}`;
    setStatus('Done.', 'done');
    return;
  }
  $('text-results').replaceChildren(
    ...res.documents.map((d) => {
      const li = document.createElement('li');
      li.dataset.item = d.id;
      for (const [cls, text] of [['item', d.id], ['name', d.title ?? ''], ['score', d.score.toFixed(4)]]) {
        if (!text) continue;
        const e = document.createElement('span');
        e.className = cls;
        e.textContent = text;
        li.append(e);
      }
      return li;
    }),
  );
  $('text-note').textContent = `search: ${res.search}`;
  setStatus('Done.', 'done');
}

/** Each user's training items (CSR), which the server excludes by default: the page excludes them too. */
async function loadSeen(base, manifest) {
  const arr = (name) => manifest.arrays.find((a) => a.name === name);
  const o = arr('seen.offsets');
  const c = arr('seen.cols');
  if (!o || !c) return null;
  const bin = async (a) => {
    const r = await fetch(base + a.file);
    if (!r.ok) throw new Error(`${a.file}: HTTP ${r.status}`);
    return new Int32Array(await r.arrayBuffer());
  };
  const [offsets, cols] = await Promise.all([bin(o), bin(c)]);
  return { offsets, cols };
}

function buildControls() {
  const dl = $('users');
  for (const u of state.users.slice(0, 500)) dl.append(new Option(u));
  $('user').value = state.users[Math.min(5, state.users.length - 1)];
  // Examples from this model's own ids, not made-up ones.
  $('user').placeholder = `user id, e.g. ${state.users[0]}`;
  $('history').placeholder = `item ids, e.g. ${state.items.slice(0, 2).join(', ')}`;
  const fi = $('feature-inputs');
  if (!state.feats.user.length) fi.textContent = '(this model has no user features)';
  state.feats.user.forEach((f, i) => {
    const s = document.createElement('select');
    s.id = `ufeat-${i}`;
    s.title = f.name;
    f.vocab.forEach((v, j) => j > 0 && s.append(new Option(`${f.name} = ${v}`, v)));
    fi.append(s);
  });
  const fl = $('filter-inputs');
  state.feats.item.forEach((f, i) => {
    const label = document.createElement('label');
    label.textContent = `only ${f.name} `;
    const s = document.createElement('select');
    s.id = `ifilter-${i}`;
    s.append(new Option('any', ''));
    f.vocab.forEach((v, j) => j > 0 && s.append(new Option(v, v)));
    label.append(s);
    fl.append(label);
  });
  for (const [id, mode] of [['user', 'user'], ['history', 'history']]) $(id).addEventListener('focus', () => selectMode(mode));
  $('feature-inputs').addEventListener('change', () => selectMode('features'));
  $('go').addEventListener('click', () => run().catch((e) => setStatus(e.message, 'error')));
  for (const id of ['user', 'history']) $(id).addEventListener('keydown', (e) => e.key === 'Enter' && $('go').click());
}

function selectMode(m) {
  document.querySelector(`input[name=mode][value=${m}]`).checked = true;
}

/** The request as the server takes it, from the form. */
function request() {
  const mode = document.querySelector('input[name=mode]:checked').value;
  const k = Math.max(1, Math.min(100, Number($('k').value) || 10));
  // The API's default (and the CLI's): the user's training items, or the history's own items, are left out.
  const body = { k, excludeSeen: $('exclude-seen').checked };
  if (mode === 'user') body.user = $('user').value.trim();
  if (mode === 'features') body.features = Object.fromEntries(state.feats.user.map((f, i) => [f.name, $(`ufeat-${i}`).value]));
  if (mode === 'history') body.history = $('history').value.split(/[\s,]+/).filter(Boolean);
  const filter = {};
  state.feats.item.forEach((f, i) => {
    const v = $(`ifilter-${i}`).value;
    if (v) filter[f.name] = [v];
  });
  if (Object.keys(filter).length) body.filter = { features: filter };
  return body;
}

const l2norm = (x) => tf.div(x, tf.maximum(tf.norm(x, 2, 1, true), 1e-12));

/** The query vector [1, dim], or null (with the reason) when the model cannot embed it. */
function queryVector(body) {
  const { W, uc } = state;
  return tf.tidy(() => {
    let parts;
    if (body.user !== undefined) {
      const u = state.userIndex.get(body.user);
      if (u === undefined) return { q: null, why: `unknown user '${body.user}'` };
      parts = [tf.gather(W['user.id.emb'], [u])];
      uc.features.forEach((_, f) => parts.push(tf.gather(W[`user.feature${f}.emb`], [state.userFeatValues[f][u]])));
      // Dense features: the user's stored values through the feature's linear projection.
      (uc.dense ?? []).forEach((_, k) => parts.push(tf.add(tf.matMul(tf.gather(W[`user.dense${k}.values`], [u]), W[`user.dense${k}.w`]), W[`user.dense${k}.b`])));
    } else if (body.features !== undefined) {
      parts = [tf.reshape(W['user.id.mean'], [1, -1])];
      state.feats.user.forEach((f, i) => parts.push(tf.gather(W[`user.feature${i}.emb`], [Math.max(0, f.vocab.indexOf(body.features[f.name]))])));
      // Dense features are not asked for on this page: zeros, whose projection is the bias.
      (uc.dense ?? []).forEach((_, k) => parts.push(tf.reshape(W[`user.dense${k}.b`], [1, -1])));
    } else {
      if (state.seqHistory) return { q: null, why: 'history queries of a sequence model run in its SASRec tower on the server, not in this page' };
      const ids = body.history.map((t) => state.itemIndex.get(t)).filter((j) => j !== undefined);
      if (!ids.length) return { q: null, why: 'no known item in the history' };
      return { q: l2norm(tf.mean(tf.gather(W['item.embeddings'], ids), 0, true)) };
    }
    let x = tf.concat(parts, 1);
    uc.mlp.forEach((_, l) => {
      x = tf.add(tf.matMul(x, W[`user.mlp${l}.w`]), W[`user.mlp${l}.b`]);
      if (l < uc.mlp.length - 1) x = tf.relu(x);
    });
    return { q: l2norm(x) };
  });
}

function rankInBrowser(body) {
  const { q, why } = queryVector(body);
  if (!q) return { items: [], why };
  const t0 = performance.now();
  const out = tf.tidy(() => {
    let scores = tf.reshape(tf.matMul(state.W['item.embeddings'], q, false, true), [-1]);
    const filter = body.filter?.features ?? {};
    const banned = excludedItems(body);
    if (banned.length) {
      const keep = new Float32Array(state.items.length).fill(1);
      for (const j of banned) keep[j] = 0;
      scores = tf.where(tf.greater(tf.tensor1d(keep), 0), scores, tf.fill(scores.shape, -Infinity));
    }
    state.feats.item.forEach((f, i) => {
      if (!filter[f.name]) return;
      const v = f.vocab.indexOf(filter[f.name][0]);
      const mask = tf.equal(state.W[`item.feature${i}.values`], v);
      scores = tf.where(mask, scores, tf.fill(scores.shape, -Infinity));
    });
    const { values, indices } = tf.topk(scores, Math.min(body.k, state.items.length));
    return [values.dataSync(), indices.dataSync()];
  });
  q.dispose();
  const [vals, idx] = out;
  const items = [];
  idx.forEach((j, r) => Number.isFinite(vals[r]) && items.push({ item: state.items[j], score: vals[r] }));
  return { items, ms: performance.now() - t0 };
}

/** Items the server leaves out with excludeSeen: a known user's training items, or the history's items. */
function excludedItems(body) {
  if (!body.excludeSeen) return [];
  if (body.history !== undefined) return body.history.map((t) => state.itemIndex.get(t)).filter((j) => j !== undefined);
  const u = body.user === undefined ? undefined : state.userIndex.get(body.user);
  if (u === undefined || !state.seen) return [];
  return Array.from(state.seen.cols.subarray(state.seen.offsets[u], state.seen.offsets[u + 1]));
}

function itemName(itemId) {
  const j = state.itemIndex.get(itemId);
  return j === undefined || !state.names ? '' : (state.names[j] ?? '');
}

function itemTag(itemId) {
  const j = state.itemIndex.get(itemId);
  if (j === undefined || !state.feats.item.length) return '';
  const f = state.feats.item[0];
  return f.vocab[state.itemFeatValues[0][j]] ?? '';
}

function show(listId, items) {
  const ol = $(listId);
  ol.replaceChildren(
    ...items.map((it) => {
      const li = document.createElement('li');
      li.dataset.item = it.item;
      const span = (cls, text) => {
        const e = document.createElement('span');
        e.className = cls;
        e.textContent = text;
        return e;
      };
      li.append(span('item', it.item));
      // The name from the server's answer, else from the bundle's names; no empty pill when there is no tag.
      const name = it.name ?? itemName(it.item);
      if (name) li.append(span('name', name));
      const tag = itemTag(it.item);
      if (tag) li.append(span('tag', tag));
      li.append(span('score', it.score.toFixed(4)));
      return li;
    }),
  );
}

async function run() {
  if (!state.ready) return;
  setStatus('Ranking…', 'busy');
  const body = request();
  const local = rankInBrowser(body);
  show('browser-results', local.items);
  $('browser-note').textContent = local.why ? `${local.why}: nothing to rank in the browser` : `${state.items.length} items ranked in ${local.ms.toFixed(1)} ms`;
  const r = await fetch('/recommend', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const server = await r.json();
  if (!r.ok) {
    show('server-results', []);
    $('server-note').textContent = `HTTP ${r.status}: ${server.message}`;
  } else {
    show('server-results', server.items);
    $('server-note').textContent = server.source === 'popularity' ? `popularity fallback: ${server.reason}` : `search: ${server.search}${server.warnings ? ` · ${server.warnings.join('; ')}` : ''}`;
  }
  const mine = new Set(local.items.map((x) => x.item));
  const same = r.ok && server.source === 'model' ? server.items.filter((x) => mine.has(x.item)).length : 0;
  $('agreement').textContent = local.items.length ? `Browser and server agree on ${same} of ${local.items.length} items.` : '';
  $('agreement').dataset.same = String(same);
  setStatus('Done.', 'done');
}

load().catch((e) => setStatus(`Could not load the model: ${e.message}`, 'error'));
