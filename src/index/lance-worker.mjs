// LanceDB searches for src/index/lance-index.ts, run in a worker thread. LanceDB's API is asynchronous; the
// callers (the server's Recommender, the miner's retriever, recall measurement) search synchronously, as they
// do with the HNSW and IVF indexes. So the calling thread posts a request, blocks on Atomics.wait, and takes
// the reply with receiveMessageOnPort; this thread does the asynchronous work. Plain JS (no TypeScript
// loader needed in the worker).
import { workerData } from 'node:worker_threads';
import * as lancedb from '@lancedb/lancedb';

const { port, control, uri, tableName } = workerData;
const flag = new Int32Array(control);
let table = null;

function reply(msg, transfer = []) {
  port.postMessage(msg, transfer);
  Atomics.store(flag, 0, 1);
  Atomics.notify(flag, 0);
}

async function handle(m) {
  if (m.op === 'open') {
    const db = await lancedb.connect(uri);
    const names = await db.tableNames();
    if (!names.includes(tableName)) return { error: `no table '${tableName}' (tables: ${names.join(', ') || 'none'})` };
    table = await db.openTable(tableName);
    const rows = await table.countRows();
    const schema = await table.schema();
    const v = schema.fields.find((f) => f.name === 'vector');
    const dim = v?.type?.listSize ?? null;
    const cols = schema.fields.map((f) => f.name);
    const indices = (await table.listIndices()).map((i) => ({ name: i.name, type: i.indexType, columns: i.columns }));
    return { rows, dim, cols, indices };
  }
  if (m.op === 'search') {
    let qb = table.search(m.q).distanceType(m.metric === 'cos' ? 'cosine' : 'dot').limit(m.k).select(['item', '_distance']);
    if (m.nprobe) qb = qb.nprobes(m.nprobe);
    if (m.refineFactor) qb = qb.refineFactor(m.refineFactor);
    const t = await qb.toArrow();
    const n = t.numRows;
    const ids = new Int32Array(n);
    const dist = new Float32Array(n);
    const ic = t.getChild('item');
    const dc = t.getChild('_distance');
    for (let i = 0; i < n; i++) {
      ids[i] = ic.get(i);
      dist[i] = dc.get(i);
    }
    return { ids, dist };
  }
  if (m.op === 'ids') {
    const t = await table.query().select(['item', 'id']).toArrow();
    const out = new Array(t.numRows);
    const ic = t.getChild('item');
    const sc = t.getChild('id');
    for (let i = 0; i < t.numRows; i++) out[i] = [ic.get(i), sc.get(i)];
    return { pairs: out };
  }
  return { error: `unknown op ${m.op}` };
}

port.on('message', (m) => {
  handle(m).then(
    (r) => reply(r, r.ids ? [r.ids.buffer, r.dist.buffer] : []),
    (e) => reply({ error: String(e?.message ?? e).split('\n')[0] }),
  );
});
