#!/usr/bin/env bash
# How far QAT runs drift apart when only the order of float sums differs: `dsg quantize --method qat` with one
# kernel thread and with two, and `dsg-mpi quantize` on two ranks of one thread, 20 iterations of batch 64 on the
# embedded model (one iteration per epoch, so each checkpoint's history holds every iteration's losses). Prints,
# per iteration, each run's relative difference from the one-thread run in the generator's and the student's
# loss. Docs/CLUSTER.md records its output. Extra arguments go to every run (e.g. --generator-learning-rate 1e-4).
# Usage: bash Benchmarks/qat-rounding.sh [dsg quantize options...]   (run from the package root; python3 reads the
# checkpoints)
set -euo pipefail
swift build -c release --product dsg >/dev/null
swift build -c release --product dsg-mpi >/dev/null
bin=$(swift build -c release --show-bin-path)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
options=(--method qat --epochs 20 --iterations-per-epoch 1 --qat-batch-size 64 --warmup-epochs 1
    --calibration-epochs 3 --qat-seed 3 "$@")
run() { # name, then the command
    local name=$1
    shift
    "$@" "${options[@]}" --checkpoint "$work/$name.safetensors" --output "$work/$name-model.safetensors" \
        > "$work/$name.log" 2>&1 || { cat "$work/$name.log" >&2; exit 1; }
}
run threads1 env DSG_THREADS=1 "$bin/dsg" quantize
run threads2 env DSG_THREADS=2 "$bin/dsg" quantize
run ranks2 mpirun --allow-run-as-root --oversubscribe -np 2 "$bin/dsg-mpi" quantize
python3 - "$work" <<'PYTHON'
import json, struct, sys
def losses(name):
    data = open(f"{sys.argv[1]}/{name}.safetensors", "rb").read()
    header = json.loads(data[8:8 + struct.unpack("<Q", data[:8])[0]])
    history = json.loads(header["__metadata__"]["qat"])["history"]
    return [(e["generatorLoss"], e["studentLoss"]) for e in history]
base = losses("threads1")
others = {name: losses(name) for name in ["threads2", "ranks2"]}
print("relative difference from one thread (generator loss / student loss)")
print("iteration  2 threads            2 ranks")
for i, (g, s) in enumerate(base):
    cells = [f"{abs(o[i][0] - g) / abs(g):.1e} / {abs(o[i][1] - s) / abs(s):.1e}" for o in others.values()]
    print(f"{i + 1:9d}  " + "  ".join(f"{c:19s}" for c in cells))
PYTHON
