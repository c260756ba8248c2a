#!/usr/bin/env bash
# Families on ONE wall-clock budget, trained side by side, one thread each (so a loaded machine
# slows them alike; on 2 cores, run at most 2 families), then evaluated and tabulated by
# `ssavae compare` (which skips the finished trainings).
#   MINUTES=25 bash bench/side_by_side.sh OUT vae,vaegan [extra train args...]
set -eu
OUT="$1"; MODELS="$2"; shift 2; MINUTES="${MINUTES:-25}"
COMMON="--data fashion-mnist --train.progress false --train.sample_every 0"
mkdir -p "$OUT"
for f in ${MODELS//,/ }; do
  if [ ! -f "$OUT/$f/summary.json" ]; then
    OMP_NUM_THREADS=1 ssavae train --model "$f" --out "$OUT/$f" $COMMON --train.threads 1 \
      --train.max_minutes "$MINUTES" --train.epochs 1000000 "$@" > "$OUT/$f.log" 2>&1 &
  fi
done
wait
ssavae compare --models "$MODELS" --budget "minutes=$MINUTES" --out "$OUT" $COMMON "$@" > "$OUT/compare.log" 2>&1
cat "$OUT/compare.md"
