#!/usr/bin/env python3
"""SASRec training-throughput peer (PyTorch, CPU): the same model and step as Towerlab's `sasrec` tower.

Model (Kang & McAuley 2018, as the reference implementations; identical to src/seq/sasrec.ts):
  x = sqrt(d) * E[item] + P[position]  (left-padded to max length L; the last item at position L-1), dropout
  per block: a = LN1(x); Q = a Wq, K = x Wk, V = x Wv (+biases); causal + key-padding-masked softmax attention
             with dropout on the probabilities; y1 = a + Wo O; b = LN2(y1); x = b + drop(W2 drop(relu(W1 b)))
  h = LN_final(x)   (LayerNorm eps 1e-8)
Loss: SASRec's BCE with one negative per position, over the non-padding positions:
  mean_t [ softplus(-<h_t, e_pos>) + softplus(<h_t, e_neg>) ]
Optimisers: item table Embedding(sparse=True) + SparseAdam, everything else Adam; lr 1e-3, betas (0.9, 0.98).
Batches: `--lengths-file` gives the per-sequence number of positions to sample from (e.g. Amazon Beauty's
training sequences), otherwise every sequence has the full length L. Ids are uniform random and
pre-generated (a pool of 16 batches is cycled), so random number generation is not timed.
Timing as twotower_bench.py: warm-up steps, then `reps` repetitions of `steps` steps, median repetition.

Usage: python3 sasrec_bench.py --threads 2 [--batch 128,256] [--lengths-file F] [--json out.json]
"""
import argparse
import json
import math
import os
import platform
import random
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d, heads, p):
        super().__init__()
        self.h = heads
        self.dh = d // heads
        self.ln1 = nn.LayerNorm(d, eps=1e-8)
        self.ln2 = nn.LayerNorm(d, eps=1e-8)
        self.wq, self.wk, self.wv, self.wo = (nn.Linear(d, d) for _ in range(4))
        self.ff1 = nn.Linear(d, d)
        self.ff2 = nn.Linear(d, d)
        self.drop = nn.Dropout(p)

    def forward(self, x, mask):
        B, L, d = x.shape
        a = self.ln1(x)

        def heads(t):
            return t.view(B, L, self.h, self.dh).transpose(1, 2)

        q, k, v = heads(self.wq(a)), heads(self.wk(x)), heads(self.wv(x))
        s = (q @ k.transpose(-1, -2)) / math.sqrt(self.dh)
        s = s.masked_fill(mask, -1e9)
        p = self.drop(torch.softmax(s, dim=-1))
        o = (p @ v).transpose(1, 2).reshape(B, L, d)
        y1 = a + self.wo(o)
        b = self.ln2(y1)
        return b + self.drop(self.ff2(self.drop(F.relu(self.ff1(b)))))


class SASRec(nn.Module):
    def __init__(self, n_items, d, L, blocks, heads, p):
        super().__init__()
        self.L = L
        self.d = d
        self.item = nn.Embedding(n_items, d, sparse=True)
        nn.init.normal_(self.item.weight, std=math.sqrt(2 / (n_items + d)))
        self.pos = nn.Parameter(torch.randn(L, d) * math.sqrt(2 / (L + d)))
        self.blocks = nn.ModuleList(Block(d, heads, p) for _ in range(blocks))
        self.ln = nn.LayerNorm(d, eps=1e-8)
        self.drop = nn.Dropout(p)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                nn.init.zeros_(m.bias)
        causal = torch.triu(torch.ones(L, L, dtype=torch.bool), 1)
        self.register_buffer("causal", causal)

    def forward(self, seqs, valid):
        x = self.item(seqs) * math.sqrt(self.d) + self.pos
        x = self.drop(x)
        # Causal, and padding keys masked (so a padded batch computes what a packed one does).
        mask = (self.causal[None, None] | ~valid[:, None, None, :])
        for blk in self.blocks:
            x = blk(x, mask)
        return self.ln(x)


def make_pool(B, L, n_items, lengths, g):
    pool = []
    for _ in range(16):
        lens = torch.tensor([min(L, random.choice(lengths)) if lengths else L for _ in range(B)])
        valid = torch.arange(L)[None, :] >= (L - lens)[:, None]
        seqs = torch.randint(0, n_items, (B, L), generator=g) * valid
        pos = torch.randint(0, n_items, (B, L), generator=g)
        neg = torch.randint(0, n_items, (B, L), generator=g)
        pool.append((seqs, valid, pos, neg, int(lens.sum())))
    return pool


def run_config(a, B, lengths):
    torch.manual_seed(0)
    random.seed(0)
    model = SASRec(a.items, a.dim, a.maxlen, a.blocks, a.heads, a.dropout)
    dense = [p for n, p in model.named_parameters() if not n.startswith("item.")]
    opts = [torch.optim.SparseAdam([model.item.weight], lr=a.lr, betas=(0.9, 0.98)),
            torch.optim.Adam(dense, lr=a.lr, betas=(0.9, 0.98))]
    g = torch.Generator().manual_seed(123)
    pool = make_pool(B, a.maxlen, a.items, lengths, g)
    k = [0]

    def step():
        seqs, valid, pos, neg, _ = pool[k[0] % 16]
        k[0] += 1
        for o in opts:
            o.zero_grad(set_to_none=True)
        h = model(seqs, valid)
        hv = h[valid]
        sp = (hv * model.item(pos[valid])).sum(-1)
        sn = (hv * model.item(neg[valid])).sum(-1)
        loss = (F.softplus(-sp) + F.softplus(sn)).mean()
        loss.backward()
        for o in opts:
            o.step()
        return float(loss)

    model.train()
    t0 = time.perf_counter()
    first = step()
    for _ in range(a.warmup - 1):
        step()
    wt = (time.perf_counter() - t0) / max(1, a.warmup)
    n = a.steps
    if wt * n > a.rep_budget:
        n = max(3, int(a.rep_budget / wt))
    reps = []
    for _ in range(a.reps):
        t = time.perf_counter()
        for _ in range(n):
            last = step()
        reps.append(time.perf_counter() - t)
    med = statistics.median(reps)
    positions = sum(p[4] for p in pool) / len(pool)
    return {"B": B, "lengths": "file" if lengths else "full", "steps_per_rep": n, "reps": a.reps,
            "ms_per_step": med / n * 1e3, "examples_per_s": n * B / med, "positions_per_s": n * positions / med,
            "rep_ms_per_step": [r / n * 1e3 for r in reps], "first_loss": first, "final_loss": last}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", default="128,256")
    ap.add_argument("--items", type=int, default=12101)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--maxlen", type=int, default=50)
    ap.add_argument("--blocks", type=int, default=2)
    ap.add_argument("--heads", type=int, default=1)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lengths-file", default=None)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--rep-budget", type=float, default=4.0)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    lengths = None
    if a.lengths_file:
        with open(a.lengths_file) as f:
            lengths = [int(x) for x in f.read().split()]
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "python": platform.python_version(),
            "ld_preload": os.environ.get("LD_PRELOAD")}
    print(json.dumps(meta), flush=True)
    results = []
    for B in [int(x) for x in a.batch.split(",")]:
        r = run_config(a, B, lengths)
        results.append(r)
        print(f"B={B} lengths={r['lengths']} steps={r['steps_per_rep']} ms/step={r['ms_per_step']:.1f} "
              f"seq/s={r['examples_per_s']:.0f} positions/s={r['positions_per_s']:.0f}", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
