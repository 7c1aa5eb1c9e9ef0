#!/usr/bin/env bash
# Issue-3 accuracy experiment on a GPU machine: canonical channel ensemble (1000 train / 100 val / 100 test),
# full vs half precision trained side by side, then test error and zero-shot 128x128 super-resolution error.
# Usage: bash bench/accuracy_experiment.sh OUTDIR [EPOCHS] [TRAIN_TIMEOUT_S]
set -u
out=${1:?OUTDIR}; epochs=${2:-60}; limit=${3:-330}
work=$(mktemp -d)
cli="python3 -m ccs_fno.cli"
train="python3 -m ccs_fno.train_cli"
common="--epochs $epochs --batch-size 16 --width 32 --modes 16 --layers 4 --lr 2e-3 --val-fraction 0.0833334 --test-fraction 0.0833334 --num-workers 4 --device cuda --no-progress"
t0=$(date +%s)
$cli generate "$work/canonical.zarr" --samples 1200 --geology channel --workers 15 --seed 0 --no-progress | tail -3
echo "generate 1200 x 64x64: $(( $(date +%s) - t0 )) s"
$cli generate "$work/sr128.zarr" --samples 32 --geology channel --resolution 128 --workers 6 --seed 99 --no-progress > "$out/sr128_generate.txt" 2>&1 &
for p in full half; do
  timeout "$limit" $train train "$work/canonical.zarr" --run-dir "$work/run_$p" --precision $p $common > "$out/train_$p.log" 2>&1 &
done
wait
echo "trained: $(( $(date +%s) - t0 )) s"
for p in full half; do
  cp "$work/run_$p/metrics.jsonl" "$out/metrics_$p.jsonl"
  $train evaluate "$work/run_$p" "$work/canonical.zarr" --split test --device cuda --output "$out/eval_${p}_test.json" | tail -1
done
$train evaluate "$work/run_full" "$work/sr128.zarr" --split all --device cuda --output "$out/eval_full_sr128.json" | tail -1
$train evaluate "$work/run_half" "$work/sr128.zarr" --split all --device cuda --output "$out/eval_half_sr128.json" | tail -1
tail -2 "$out/metrics_full.jsonl" "$out/metrics_half.jsonl"
echo "total: $(( $(date +%s) - t0 )) s"
