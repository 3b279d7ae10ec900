#!/bin/bash
# The GPU bench of experiments/bench_step.py in one call on a lent GPU machine:
# SimCLR ResNet-50 at 224 px (batch 256) and ResNet-18 CIFAR (batch 512),
# bfloat16 (float32 master weights) and float32, each against the PyTorch
# reference at the same dtype. Most important rows first; each bench_step
# invocation writes its own <out>.json / .md, so a call stopped at its time
# limit still returns what finished.
#
# The machine has jax, flax, optax, chex and torch but not ml_collections:
# carry it as a wheel in .whl/ (see README "Speed and scaling"). If the image's
# flax/optax do not work with ssl_jax, the pinned ones in .whl/pinned/ are
# used instead.
#
#   bash experiments/gpu_bench.sh [STEPS]     # results under $OUT (or runs/gpu_bench)
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-runs/gpu_bench}
STEPS=${1:-10}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
  --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site
nvidia-smi --query-gpu=name,driver_version,memory.used,clocks.sm,clocks.max.sm \
  --format=csv
versions='import jax, flax, optax, chex, torch
print("jax", jax.__version__, "flax", flax.__version__, "optax",
      optax.__version__, "torch", torch.__version__, jax.devices())'
python3 -c "$versions"

smoke() {
  python3 experiments/bench_step.py --width=0.125 --batch_sizes=8 --steps=1 \
    --warmup=1 --torch=yes --dtypes=bfloat16 2>&1 | tail -1
}
row=$(smoke)
echo "smoke: $row"
if [[ "$row" == *error* ]]; then
  echo "the image's flax/optax failed; using the pinned wheels"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/site .whl/pinned/*.whl || exit 1
  python3 -c "$versions"
  row=$(smoke)
  echo "smoke (pinned): $row"
  [[ "$row" == *error* ]] && exit 1
fi

bench() {  # backbone batch dtype
  python3 experiments/bench_step.py --backbones="$1" --batch_sizes="$2" \
    --dtypes="$3" --steps="$STEPS" --warmup=3 --torch=yes \
    --out="$OUT/bench_step_gpu_${1}_b${2}_${3}" 2>&1 | tail -1
}
bench resnet50_224 256 bfloat16
bench resnet18_cifar 512 bfloat16
bench resnet50_224 256 float32
bench resnet18_cifar 512 float32
