#!/usr/bin/env bash
# Runs catalogue.py (the PyTorch full-catalogue softmax peer) in the environment of ../shared/peer/run.sh: Debian's
# python3-torch, OpenBLAS's OpenMP build on the library path and jemalloc preloaded (installed if missing).
# Usage: catalogue.sh --rows 1024 --items 100000 --dim 64 --threads 2
set -euo pipefail
need=""
/usr/bin/python3 -c "import torch" 2>/dev/null || need="python3-torch"
dpkg -s libopenblas0-openmp >/dev/null 2>&1 || need="$need libopenblas0-openmp"
dpkg -s libjemalloc2 >/dev/null 2>&1 || need="$need libjemalloc2"
if [ -n "$need" ]; then
  echo "installing:$need" >&2
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
fi
jem=$(ls /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 2>/dev/null || true)
export MALLOC_CONF="dirty_decay_ms:-1,muzzy_decay_ms:-1"
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
LD_PRELOAD="$jem" exec /usr/bin/python3 "$(dirname "$0")/catalogue.py" "$@"
