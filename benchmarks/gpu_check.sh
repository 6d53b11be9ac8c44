#!/usr/bin/env bash
# One prepared check for a GPU machine: within 8 minutes on one GPU, the gpu-marked tests
# (CUDA inside the sandbox included), the grading benchmark at full size, the ensemble
# measurements and the LeNet-5 recipe; every figure as JSON in OUT.
#
#   bash benchmarks/gpu_check.sh [OUT]        (default OUT: $OUT, else ./gpu-check)
#
# GRADER_DATA must hold the datasets (MNIST/ and cifar10-subset.npz or the full CIFAR-10),
# default ../shared/data. Without CUDA it runs the same steps on the CPU at small sizes, so
# that the script itself is tried where no GPU is lent. Each step has its own time limit; a
# step that fails or runs out of time is recorded as such and the others still run. Exit
# status: 0 when every step passed.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-${OUT:-gpu-check}}"
mkdir -p "$OUT"
export GRADER_DATA="${GRADER_DATA:-$(cd .. && pwd)/shared/data}"
export GRADER_CACHE="${GRADER_CACHE:-$OUT/cache}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ ! -d "$GRADER_DATA/MNIST/raw" ]; then
    echo "gpu_check: no datasets in $GRADER_DATA (MNIST/raw/ missing); set GRADER_DATA" >&2
    exit 2
fi

if python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    DEVICE=cuda
    # 8 minutes: tests 120 s, grading benchmark 300 s (its training batch twice: batched
    # ensembles and one model at a time), ensembles 30 s, LeNet-5 30 s.
    TESTS=(python -m pytest -m gpu -q -p no:cacheprovider tests)
    BENCH=(python benchmarks/bench_grading.py --device cuda --copies 200 --train-copies 64
           --runs 1 --skip-lab)
    LIMITS=(120 300 30 30)
    ENSEMBLES=(--steps 20)
    LENET='{}'
else
    DEVICE=cpu
    TESTS=(python -m pytest -q -p no:cacheprovider tests/test_trainer.py -k "one_cycle or seed")
    BENCH=(python benchmarks/bench_grading.py --device cpu --copies 4 --train-copies 2
           --runs 1 --skip-lab --train-images 500 --epochs 1)
    LIMITS=(300 900 600 600)
    ENSEMBLES=(--steps 3)
    LENET='{epochs: 1, max_train: 3000}'   # the recipe's path, not its figures
fi
echo "gpu_check: device $DEVICE, data $GRADER_DATA, figures in $OUT"

STEPS=()
run_step() {   # name, time limit in seconds, command...
    local name=$1 limit=$2 start rc
    shift 2
    echo "== $name (at most ${limit} s): $*"
    start=$(date +%s)
    timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
    rc=$?
    tail -n 25 "$OUT/$name.log"
    STEPS+=("{\"step\": \"$name\", \"exit\": $rc, \"seconds\": $(( $(date +%s) - start )), \"timed_out\": $([ $rc -eq 124 ] && echo true || echo false)}")
}

run_step tests "${LIMITS[0]}" "${TESTS[@]}"
run_step bench_grading "${LIMITS[1]}" "${BENCH[@]}" --json "$OUT/bench_grading.json"
run_step ensembles "${LIMITS[2]}" python benchmarks/ensembles.py --device "$DEVICE" \
    "${ENSEMBLES[@]}" --json "$OUT/ensembles.json"
run_step lenet5 "${LIMITS[3]}" python benchmarks/lenet_recipe.py --seeds 0 --device "$DEVICE" \
    --json "$OUT/lenet5.jsonl" "$LENET"

python - "$OUT" "$DEVICE" "${STEPS[@]}" <<'EOF'
import json, sys
from pathlib import Path

out, device, steps = Path(sys.argv[1]), sys.argv[2], [json.loads(s) for s in sys.argv[3:]]
figures = {"device": device, "steps": steps}
for name in ("bench_grading.json", "ensembles.json"):
    if (out / name).is_file():
        figures[name.removesuffix(".json")] = json.loads((out / name).read_text())
if (out / "lenet5.jsonl").is_file():
    figures["lenet5"] = [json.loads(line) for line in (out / "lenet5.jsonl").read_text().splitlines()]
(out / "figures.json").write_text(json.dumps(figures, indent=2))
print(f"figures: {out / 'figures.json'}")
sys.exit(0 if all(s["exit"] == 0 for s in steps) else 1)
EOF
