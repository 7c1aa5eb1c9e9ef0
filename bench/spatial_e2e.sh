#!/usr/bin/env bash
# Issue 10 end to end: the same training on a 128x128 store, serial vs --spatial-parallel 2.
set -euo pipefail
STORE=/work/bench_data/grid128.zarr
OPTS="--epochs 6 --batch-size 4 --val-fraction 0.125 --test-fraction 0.125 --device cpu --seed 0 --no-progress"
rm -rf /work/bench_data/e2e_serial /work/bench_data/e2e_sp2
export OMP_NUM_THREADS=1
uptime
/usr/bin/time -f "serial wall %e s" .venv/bin/ccs-fno train $STORE --run-dir /work/bench_data/e2e_serial $OPTS
uptime
/usr/bin/time -f "spatial-parallel 2 wall %e s" .venv/bin/ccs-fno train $STORE --run-dir /work/bench_data/e2e_sp2 $OPTS --nproc 2 --spatial-parallel 2
uptime
.venv/bin/ccs-fno evaluate /work/bench_data/e2e_serial $STORE --split test | head -6 || true
.venv/bin/ccs-fno evaluate /work/bench_data/e2e_sp2 $STORE --split test | head -6 || true
