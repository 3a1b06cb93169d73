#!/usr/bin/env bash
# The GPU check: every CUDA path of labrunner run for real on one accelerator, in one go
# (about 8 minutes on one H200). Writes its log and the figures to $OUT (default ./gpu-check).
#
# On a machine with the GPU and PyTorch but no network, first carry the few pure-Python
# dependencies the image may lack, made beside the checkout on a machine with a registry:
#
#   pip download -d .wheels --no-deps latex2mathml mdit-py-plugins platformdirs filelock
#
# then run this script there with `.wheels` carried:  bash benchmarks/gpu_check.sh
#
# What it does, each step logged with its exit status:
#   1. install labrunner (editable, no dependencies fetched) and print the GPU and versions
#   2. the test suite's CUDA tests and the fast tier on the GPU machine
#   3. every lab with --profile quick --device cuda, then --profile full --device cuda
#      (rnn_lm on the synthetic corpus at Penn Treebank's size: 930k training tokens, 10k words)
#   4. --deterministic on CUDA (the cuBLAS workspace setting, and what falls back)
#   5. rnn_lm at the assignment's size (E 128, H 1024, batch 20, seq 30): tokens/s of the lab's
#      trainer against a plain PyTorch loop, fp32 and bf16, with the perplexity after equal steps
#   6. the adversarial attack with torchvision's AlexNet (random weights): batched against one
#      target at a time
#
# `DRY=1 bash benchmarks/gpu_check.sh` runs the same steps on this machine's CPU with the smoke
# profile and tiny sizes, to check that the script itself runs in one go before a GPU is lent.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-check}
if [ "${DRY:-0}" = 1 ]; then
  DEVICE=cpu QUICK=smoke FULL=smoke TOKENS=3000 VOCAB=80 RNN="--embedding 16 --hidden 32 --tokens 4000 --vocab 80"
  ADV="--model shapes --targets 2 --iters 3 --repeat 2" PRECISIONS=fp32,bf16
  TESTS=(-k precision)
else
  DEVICE=cuda QUICK=quick FULL=full TOKENS=930000 VOCAB=10000 RNN="--embedding 128 --hidden 1024 --tokens 200000 --vocab 10000"
  ADV="--model alexnet --targets 8 --iters 20 --repeat 5" PRECISIONS=fp32,bf16
  TESTS=(-m "not slow")
fi
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 LABRUNNER_CACHE_DIR="$OUT/cache" PIP_DISABLE_PIP_VERSION_CHECK=1
PY=${PYTHON:-python3}
status=0
step() { # step NAME COMMAND...: run, log, remember a failure
  local name=$1; shift
  printf '\n=== %s: %s\n' "$name" "$*" | tee -a "$OUT/gpu-check.log"
  local start=$SECONDS
  "$@" 2>&1 | tee -a "$OUT/gpu-check.log" | tail -n 40
  local rc=${PIPESTATUS[0]}
  printf '=== %s: exit %s in %ss\n' "$name" "$rc" "$((SECONDS - start))" | tee -a "$OUT/gpu-check.log"
  [ "$rc" = 0 ] || status=1
}

if [ -d .wheels ]; then
  step deps $PY -m pip install -q --no-index --find-links .wheels latex2mathml mdit-py-plugins platformdirs filelock
fi
step install $PY -m pip install -q --no-deps --no-build-isolation -e .
step device $PY -c "import torch, labrunner; print('labrunner', labrunner.__version__, 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')"
step tests $PY -m pytest -q -x "${TESTS[@]}" tests
step quick $PY -m labrunner run all --profile "$QUICK" --device "$DEVICE" --out "$OUT/reports" --force
step quick-bf16 $PY -m labrunner run rnn_lm adversarial --profile "$QUICK" --device "$DEVICE" --precision bf16 --out "$OUT/reports" --force
step full $PY -m labrunner run all --profile "$FULL" --device "$DEVICE" --out "$OUT/reports" --force \
  --set rnn_lm.corpus=synthetic --set rnn_lm.synthetic_tokens="$TOKENS" --set rnn_lm.synthetic_vocab="$VOCAB" \
  --set rnn_lm.epochs=2 --lab-timeout 420
step deterministic $PY -m labrunner run attention rnn_lm --profile smoke --device "$DEVICE" --deterministic \
  --out "$OUT/reports" --force
# shellcheck disable=SC2086  # the size options are meant to split
step rnn-speed $PY benchmarks/bench_rnn_lm.py speed $RNN --batch 20 --seq 30 --device "$DEVICE" \
  --precision "$PRECISIONS" --skip-naive --repeats 5
# shellcheck disable=SC2086
step adversarial-speed $PY benchmarks/bench_adversarial.py $ADV --device "$DEVICE"
for run in "$OUT"/reports/2*; do
  [ -f "$run/report.html" ] && cp "$run/run.json" "$OUT/run-$(basename "$run").json"
done
exit "$status"
