#!/usr/bin/env bash
# The workers benchmark on a GPU machine: `llmid worker --device cuda:0` (ONNX Runtime with the TensorRT or CUDA
# provider), against the in-process run, with 1 and 2 worker processes. Needs redis-server and onnxruntime-gpu
# (`pip install -e '.[gpu]'`) on that machine. Figures go to $OUT (default benchmarks/out): workers_gpu.md (the
# table), workers_gpu.json (raw), providers.txt (what ONNX Runtime offers and what a session really used).
#
#   OUT=/tmp/out bash benchmarks/workers_gpu.sh [LINES] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
LINES=${1:-200000}
RUNS=${2:-3}
OUT=${OUT:-benchmarks/out}
PY=${PY:-.venv/bin/python}
mkdir -p "$OUT"

command -v redis-server >/dev/null || { echo "redis-server is not installed (apt-get install redis-server)" >&2; exit 2; }
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"

# Which providers this onnxruntime build has, and which one a session on cuda:0 really uses (logged once).
"$PY" - <<'EOF' 2>&1 | tee "$OUT/providers.txt"
import logging, tempfile, time
import numpy as np
import onnxruntime as ort
from llmid.engine import runtime
logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
print("available:", ort.get_available_providers())
print(runtime.describe("cuda:0"))
if runtime.CUDA not in ort.get_available_providers():
    raise SystemExit("no CUDAExecutionProvider: install onnxruntime-gpu (pip install -e '.[gpu]')")
try:
    from onnx import TensorProto, helper, save
except ImportError:
    raise SystemExit(0)
d = 1024  # a MatMul chain big enough for the GPU to matter: batch x 1024 @ 1024 x 1024, 8 times
w = helper.make_tensor("w", TensorProto.FLOAT, [d, d], np.random.default_rng(0).standard_normal(d * d).astype(np.float32).tolist())
nodes, prev = [], "x"
for i in range(8):
    nodes.append(helper.make_node("MatMul", [prev, "w"], [f"h{i}"]))
    prev = f"h{i}"
graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, d])],
                          [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [None, d])], [w])
path = tempfile.mktemp(suffix=".onnx")
save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
for dev in ("cpu", "cuda:0"):
    sess = runtime.make_session(path, dev)
    x = np.ones((runtime.batch_size(dev), d), np.float32)
    sess.run(None, {"x": x})
    t = time.perf_counter()
    for _ in range(20):
        sess.run(None, {"x": x})
    dt = (time.perf_counter() - t) / 20
    print(f"{dev}: {sess.get_providers()[0]}, batch {x.shape[0]}, {x.shape[0] / dt:,.0f} rows/s")
EOF

"$PY" benchmarks/workers_throughput.py --lines "$LINES" --runs "$RUNS" --device cuda:0 --pool prefork \
  --json "$OUT/workers_gpu.json" | tee "$OUT/workers_gpu.md"
