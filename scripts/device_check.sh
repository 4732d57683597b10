#!/usr/bin/env bash
# Every GPU check and benchmark in one run, for a machine with a CUDA jax already installed (the
# project goes in with `pip install --no-deps`): the figures the CPU cannot give.
#
#   bash scripts/device_check.sh [OUT_DIR]          # on the GPU machine (OUT_DIR: $OUT, else device_out)
#   PY=.venv/bin/python bash scripts/device_check.sh --smoke /tmp/dc   # here: the script itself, tiny sizes
#
# Before spending device time, `python scripts/lower_for_gpu.py` (~80 s on a CPU) shows that the
# steps it times lower for CUDA with Triton kernels and no host callbacks.
#
# It reads two ignored folders, which must travel with the checkout:
#   data/fashion-mnist         the Fashion-MNIST IDX files (cp -r /usr/share/datasets/fashion-mnist data/)
#   runs/fashion_mnist_small   the default job's run (README's first command), for the sweep benchmark
#
# Steps, in order of what they settle; each has its own time limit, and one that fails or runs out is
# logged and the next one runs (the whole stays under ~8.5 minutes):
#   1. the device and versions;
#   2. the tests of tests/test_hardware_planned.py that run the Pallas kernel, on the device: the
#      kernel compiled by Triton (the CPU suite runs it in interpret mode) against the reference
#      path (outputs bit for bit, gradients), vmapped entries against single calls, and the other
#      backends' noise draws;
#   3. scripts/bench_sweep.py on the default run: the 20-point ADC x read-noise grid, vectorised
#      against one by one (the sweep's 5x figure);
#   4. scripts/benchmark.py for VGG16 32x32, bfloat16, batch 256 at the paper's CIFAR-10 sparsity:
#      `quant` and planned `ou` against `ideal` (not the reference `ou`, which computes every tap);
#   5. scripts/benchmark.py for the small VGG (width 0.5, batch 128).
# Writes to OUT_DIR: summary.txt (the device and each step's result lines), log.txt (everything),
# bench_vgg16.json and bench_small.json (benchmark.py --json). Nothing is appended to docs/.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

smoke=0
if [ "${1:-}" = "--smoke" ]; then smoke=1; shift; fi
out=${1:-${OUT:-device_out}}
mkdir -p "$out"
PY=${PY:-python3}
export PYTHONUNBUFFERED=1
# Several processes share the GPU one after another: none takes 75% of its memory up front.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
if [ -z "${RRAMJAX_FASHION_MNIST_DIR:-}" ] && [ -d data/fashion-mnist ]; then
  export RRAMJAX_FASHION_MNIST_DIR=$PWD/data/fashion-mnist
fi
log=$out/log.txt
summary=$out/summary.txt
: >"$log"
: >"$summary"

note() { echo "$*" | tee -a "$summary" "$log"; }

# step NAME SECONDS GREP_PATTERN COMMAND...: runs COMMAND under a time limit, its output to the log;
# the lines matching GREP_PATTERN and the exit status go to the summary.
step() {
  local name=$1 limit=$2 pattern=$3; shift 3
  local start=$SECONDS part=$out/.part.txt
  echo "=== $name: $*" >>"$log"
  timeout --kill-after=10 "$limit" "$@" >"$part" 2>&1
  local rc=$?
  cat "$part" >>"$log"
  note "--- $name: exit $rc after $((SECONDS - start)) s$([ $rc -eq 124 ] && echo " (its ${limit} s limit)")"
  grep -E "$pattern" "$part" | awk '!seen[$0]++' | tail -n 40 | tee -a "$summary"
  rm -f "$part"
}

# The project, over the machine's own jax (no network there: no build isolation, no dependencies).
if ! "$PY" -m pip install -q --no-deps --no-build-isolation -e . >>"$log" 2>&1; then
  note "pip install -e . failed (see log.txt); running from the checkout through PYTHONPATH"
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

note "=== rramjax device check $(date -u +%FT%TZ), $(git rev-parse --short HEAD 2>/dev/null || echo '?')$([ $smoke -eq 1 ] && echo ', smoke')"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >>"$summary" 2>&1
"$PY" - >>"$summary" 2>&1 <<'PY'
import importlib, jax
print("jax devices:", jax.devices(), "backend:", jax.default_backend())
from rramjax.hardware.planned import default_backend
print("planned ou backend:", default_backend())
for name in ("jax", "jaxlib", "flax", "optax", "chex", "orbax.checkpoint", "numba", "numpy", "tqdm", "matplotlib"):
  try:
    print(f"  {name} {importlib.import_module(name).__version__}")
  except Exception as e:  # pylint: disable=broad-except
    print(f"  {name}: {type(e).__name__}: {e}")
PY
cat "$summary" >>"$log"

if [ $smoke -eq 1 ]; then
  tests=(tests/test_hardware_planned.py -k "noisy_backends or plan_errors")
  grid=(--grid hardware.adc_bits=5,8 --grid hardware.read_noise_lsb=0,0.5 --seeds 1)
  bench=(--smoke --steps 2)
else
  # Every test that runs the Pallas kernel (compiled here), in four processes.
  tests=(tests/test_hardware_planned.py -n 4 -k "pallas or noisy_backends or vmapped_entries")
  grid=(--grid hardware.adc_bits=4,5,6,7,8 --grid hardware.read_noise_lsb=0,0.25,0.5,1.0 --seeds 2)
  bench=()
fi

step "planned-path tests on the device" 120 "passed|failed|error|Error" \
  "$PY" -m pytest -q -p no:cacheprovider "${tests[@]}"

if [ -f runs/fashion_mnist_small/config.json ]; then
  step "sweep: vectorised vs one by one" 170 "^device|points|vectorised|one by one|ratio|Error" \
    "$PY" scripts/bench_sweep.py runs/fashion_mnist_small "${grid[@]}"
else
  note "--- sweep benchmark skipped: runs/fashion_mnist_small is missing (run the README's main job, carry it)"
fi

step "benchmark VGG16 32x32 bf16 batch 256" 170 "^device|^model|^ *vgg|^map_network|Error|failed" \
  "$PY" scripts/benchmark.py --models vgg16 --batch 256 --dtype bfloat16 --fidelities ideal,quant,ou-planned --no-append \
  --json "$out/bench_vgg16.json" "${bench[@]}"

step "benchmark small VGG batch 128" 90 "^device|^model|^ *vgg|^map_network|Error|failed" \
  "$PY" scripts/benchmark.py --models vgg_small --no-append --json "$out/bench_small.json" "${bench[@]}"

note "=== done after $SECONDS s"
