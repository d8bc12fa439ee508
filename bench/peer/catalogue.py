"""PyTorch peer of bench/catalogue.ts: one exact full-catalogue softmax step (logits = q E^T materialised,
torch.nn.functional.cross_entropy, backward to q and E), R rows x N items x d, on the CPU.
Prints one JSON line: examples/s (rows per second, median of reps), peak RSS, or the error (out of memory)."""
import argparse, json, resource, sys, time

p = argparse.ArgumentParser()
p.add_argument('--rows', type=int, required=True)
p.add_argument('--items', type=int, required=True)
p.add_argument('--dim', type=int, default=64)
p.add_argument('--threads', type=int, default=2)
p.add_argument('--reps', type=int, default=5)
a = p.parse_args()

def rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

out = {'impl': 'pytorch', 'rows': a.rows, 'items': a.items, 'dim': a.dim}
try:
    import torch
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    out['torch'] = torch.__version__
    q = (torch.randn(a.rows, a.dim) * 0.5).requires_grad_()
    E = (torch.randn(a.items, a.dim) * 0.1).requires_grad_()
    t = torch.randint(0, a.items, (a.rows,))
    base = rss_mib()
    out['rss_inputs_mib'] = base

    def step():
        q.grad = None
        E.grad = None
        logits = q @ E.t()
        loss = torch.nn.functional.cross_entropy(logits, t)
        loss.backward()
        return float(loss)

    out['loss'] = step()
    times = []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    times.sort()
    ms = times[len(times) // 2] * 1000
    out.update({'ms_per_step': ms, 'examples_per_s': a.rows / (ms / 1000), 'peak_rss_mib': rss_mib()})
except (RuntimeError, MemoryError) as e:  # allocation failure under the caller's memory cap
    msg = str(e).split('\n')[0][:200]
    out.update({'error': 'out of memory' if 'memory' in msg.lower() or 'alloc' in msg.lower() else msg, 'detail': msg, 'peak_rss_mib': rss_mib()})
print(json.dumps(out))
sys.stdout.flush()
