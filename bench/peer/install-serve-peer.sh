#!/usr/bin/env bash
# Installs the serving peer's stack (bench/peer/serve_peer.py): FastAPI + uvicorn + faiss from Debian
# (bookworm: python3-fastapi 0.92, python3-uvicorn 0.17.6, python3-faiss 1.7.3 CPU, python3-numpy 1.24, and uvicorn's
# "standard" extras uvloop 0.17 + httptools, what `pip install uvicorn[standard]` would bring),
# into the system interpreter /usr/bin/python3 (the python3 on PATH may be another one, e.g. pyenv's).
# Idempotent: installs only what /usr/bin/python3 cannot import yet.
set -euo pipefail
if /usr/bin/python3 -c "import fastapi, uvicorn, faiss, numpy, uvloop, httptools" 2>/dev/null; then
  exit 0
fi
echo "installing python3-fastapi python3-uvicorn python3-faiss python3-numpy python3-uvloop python3-httptools (apt)" >&2
apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-fastapi python3-uvicorn python3-faiss python3-numpy python3-uvloop python3-httptools >/dev/null
/usr/bin/python3 -c "import fastapi, uvicorn, faiss, numpy; print('fastapi', fastapi.__version__, 'uvicorn', uvicorn.__version__, 'faiss', faiss.__version__, 'numpy', numpy.__version__)" >&2
