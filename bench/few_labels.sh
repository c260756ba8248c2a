#!/usr/bin/env bash
# The few-label table on the TEST set (defaults were chosen on a validation split, see
# bench/vec_validation.sh): Fashion-MNIST, split seed 0, the VEC (SSAVAE's step 1 at its
# defaults) beside the supervised-only `classifier` on the same labels, same augmentation, same
# epochs and cosine learning rate, one run per (labels per class, latent size, seed).
# Resumable: a finished run is not run again. Prints mean +- std over the seeds.
#   bash bench/few_labels.sh [OUT]            env: LABELS="100 10" LATENTS="100 2" SEEDS="0 1 2"
# VEC_ARGS adds overrides to the VEC's runs (give such runs their own OUT), e.g. the label
# propagation of docs/semisup.md:
#   VEC_ARGS="--model.graph_weight 1 --model.graph_k 10 --model.graph_alpha 0.9 --model.graph_start 2" \
#     LATENTS=100 bash bench/few_labels.sh runs/few-labels-graph
set -u
OUT="${1:-runs/few-labels}"
LABELS="${LABELS:-100 10}"; LATENTS="${LATENTS:-100 2}"; SEEDS="${SEEDS:-0 1 2}"; EPOCHS="${EPOCHS:-10}"
VEC_ARGS="${VEC_ARGS:-}"
COMMON="--data fashion-mnist --data.split_seed 0 --train.lr_schedule cosine --train.progress false --train.sample_every 0"
mkdir -p "$OUT"
for z in $LATENTS; do for l in $LABELS; do for s in $SEEDS; do
  for m in classifier vec; do
    name="$m-z$z-l$l-s$s"
    [ -f "$OUT/$name/summary.json" ] && continue
    if [ "$m" = classifier ]; then
      args="--model classifier --train.epochs $EPOCHS"
    else
      args="--model ssavae --model.vec_epochs $EPOCHS --model.decoder_epochs 0 $VEC_ARGS"
    fi
    ssavae train --out "$OUT/$name" $COMMON $args --model.latent_dim "$z" \
      --data.labels_per_class "$l" --seed "$s" > "$OUT/$name.log" 2>&1 || echo "$name failed (see $OUT/$name.log)"
  done
done; done; done
python - "$OUT" <<'PY'
import json, statistics, sys
from pathlib import Path
out, rows = Path(sys.argv[1]), {}
for f in sorted(out.glob("*/summary.json")):
    m, z, l, s = f.parent.name.split("-")
    rows.setdefault((z[1:], l[1:]), {}).setdefault(m, []).append(json.load(open(f))["classification.accuracy"] * 100)
print("| latent | labels/class | classifier (seeds) | VEC (seeds) | VEC - classifier |")
print("|---:|---:|---:|---:|---:|")
fmt = lambda a: f"{statistics.mean(a):.2f} +- {statistics.stdev(a) if len(a) > 1 else 0:.2f} ({len(a)})"
for (z, l), r in sorted(rows.items(), key=lambda kv: (-int(kv[0][0]), -int(kv[0][1]))):
    c, v = r.get("classifier", []), r.get("vec", [])
    gap = f"{statistics.mean(v) - statistics.mean(c):+.2f}" if c and v else "-"
    print(f"| {z} | {l} | {fmt(c) if c else '-'} | {fmt(v) if v else '-'} | {gap} |")
PY
