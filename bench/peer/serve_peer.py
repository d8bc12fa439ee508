#!/usr/bin/env python3
"""The serving peer of bench/serve.ts: the recommendation service a Python team would write.

FastAPI + uvicorn (uvloop, httptools) + a faiss IVF-Flat index over the same item embeddings Towerlab serves,
with the same lists (nlist) and lists scanned per query (nprobe). POST /recommend {"user": id, "k": 10} answers
like Towerlab's /recommend for a known user: the user's query vector, the top k items by inner product with
the user's seen (training) items excluded (fetching k + |seen| + 16 candidates, as Towerlab does), as
{"model", "source", "query", "search", "k", "items": [{"item", "score"}], "excludedSeen"}.

Inputs (written by bench/serve.ts from the Towerlab bundle; raw little-endian arrays):
  DIR/items.f32  items × dim float32 (the bundle's item embeddings)
  DIR/users.f32  users × dim float32 (the user tower's query for every user)
  DIR/seen.offsets.i32, DIR/seen.cols.i32   each user's seen items (CSR)
  DIR/meta.json  {"items", "users", "dim"}; ids are "u<index>" / "i<index>" as in the bench's synthetic model

The index: faiss.IndexIVFFlat(IndexFlatIP, nlist, METRIC_INNER_PRODUCT), trained with the same budget as
Towerlab's IVF (10 k-means iterations on 32 sampled items per list), then all items added. Searches run
single-threaded (omp_set_num_threads(1)), like one Towerlab process; one uvicorn worker, like `towerlab serve`
without --workers.

Usage: /usr/bin/python3 serve_peer.py --data DIR --nlist 2000 --nprobe 2 [--port 0] [--index-cache FILE]
Prints "listening on http://127.0.0.1:PORT" on stdout once it accepts requests.
"""
import argparse
import json
import os
import socket
import sys
import time

import faiss
import numpy as np
import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel


class RecommendRequest(BaseModel):
    user: str
    k: int = 10
    search: str = "ann"  # accepted for the same request body; the peer always searches its index


def load(data_dir):
    meta = json.load(open(os.path.join(data_dir, "meta.json")))
    n, users, dim = meta["items"], meta["users"], meta["dim"]
    items = np.fromfile(os.path.join(data_dir, "items.f32"), dtype=np.float32).reshape(n, dim)
    user_vecs = np.fromfile(os.path.join(data_dir, "users.f32"), dtype=np.float32).reshape(users, dim)
    offsets = np.fromfile(os.path.join(data_dir, "seen.offsets.i32"), dtype=np.int32)
    cols = np.fromfile(os.path.join(data_dir, "seen.cols.i32"), dtype=np.int32)
    return meta, items, user_vecs, offsets, cols


def build_index(items, nlist, cache):
    if cache and os.path.exists(cache):
        index = faiss.read_index(cache)
        if index.ntotal == items.shape[0] and index.nlist == nlist:
            return index, None
    t0 = time.perf_counter()
    dim = items.shape[1]
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    # The same training budget as Towerlab's IVF (src/index/ivf-index.ts): 10 k-means iterations on a sample of
    # 32 items per list. faiss' defaults (25 iterations on up to 256 per list) take ~20x longer on 2 cores.
    index.cp.niter = 10
    rng = np.random.default_rng(1)
    sample = items[rng.choice(items.shape[0], size=min(items.shape[0], 32 * nlist), replace=False)]
    faiss.omp_set_num_threads(os.cpu_count() or 1)  # build on every core, serve on one
    index.train(sample)
    index.add(items)
    faiss.omp_set_num_threads(1)
    seconds = time.perf_counter() - t0
    if cache:
        faiss.write_index(index, cache + ".tmp")
        os.replace(cache + ".tmp", cache)
    return index, seconds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--nlist", type=int, default=2000)
    ap.add_argument("--nprobe", type=int, default=2)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--index-cache", default=None)
    a = ap.parse_args()

    faiss.omp_set_num_threads(1)
    meta, items, user_vecs, offsets, cols = load(a.data)
    index, build_seconds = build_index(items, a.nlist, a.index_cache)
    index.nprobe = a.nprobe
    user_index = {f"u{i}": i for i in range(meta["users"])}
    item_ids = [f"i{j}" for j in range(meta["items"])]
    print(f"peer: faiss IVF-Flat {index.nlist} lists over {index.ntotal} items, nprobe {index.nprobe}"
          + (f", built in {build_seconds:.1f} s" if build_seconds is not None else " (cached)"), file=sys.stderr, flush=True)

    app = FastAPI()

    @app.get("/health")
    async def health():
        return {"status": "ok", "items": int(index.ntotal), "nlist": int(index.nlist), "nprobe": int(index.nprobe),
                "buildSeconds": build_seconds, "pid": os.getpid()}

    @app.post("/recommend")
    async def recommend(req: RecommendRequest):
        u = user_index.get(req.user)
        if u is None:
            raise HTTPException(status_code=404, detail=f"unknown user '{req.user}'")
        if not 1 <= req.k <= 1000:
            raise HTTPException(status_code=400, detail="k must be in 1..1000")
        seen = cols[offsets[u]:offsets[u + 1]]
        banned = set(seen.tolist())
        fetch = req.k + len(seen) + 16
        scores, ids = index.search(user_vecs[u:u + 1], fetch)
        out = []
        for j, s in zip(ids[0].tolist(), scores[0].tolist()):
            if j < 0 or j in banned:
                continue
            out.append({"item": item_ids[j], "score": s})
            if len(out) == req.k:
                break
        return {"model": "faiss-peer", "source": "model", "query": "user", "search": "ivf", "k": req.k,
                "items": out, "excludedSeen": len(banned)}

    # Bind first, so the port (0 = any free one) is known before uvicorn starts serving on the socket.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", a.port))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, loop="uvloop", http="httptools")
    server = uvicorn.Server(config)

    async def announce():
        while not server.started:
            await __import__("asyncio").sleep(0.01)
        print(f"listening on http://127.0.0.1:{port}", flush=True)

    import asyncio

    async def run():
        asyncio.get_running_loop().create_task(announce())
        await server.serve(sockets=[sock])

    import uvloop
    uvloop.install()
    asyncio.run(run())


if __name__ == "__main__":
    main()
