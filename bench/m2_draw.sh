#!/usr/bin/env bash
# M2 and DRAW (docs/methods.md, sections 7-8) on Fashion-MNIST (TEST set):
#   1. m2, 100 labels per class (split seed 0), one run per seed: test accuracy, beside the
#      supervised-only classifier on the same split, augmentation, epochs and seeds
#   2. draw against vae on the same wall-clock budget and likelihood (trained side by side, one
#      thread each: bench/side_by_side.sh): importance-weighted NLL
#   3. draw_cond: the evaluator's accuracy on samples asked for class k; the canvas figures
# Resumable (finished runs are skipped).
#   bash bench/m2_draw.sh [OUT]   env: SEEDS ("0 1 2"), EPOCHS (10), MINUTES (10), PARTS ("m2 draw cond")
set -u
OUT="${1:-runs/m2-draw}"; SEEDS="${SEEDS:-0 1 2}"; EPOCHS="${EPOCHS:-10}"; MINUTES="${MINUTES:-10}"
PARTS="${PARTS:-m2 draw cond}"
COMMON="--data fashion-mnist --data.split_seed 0 --train.lr_schedule cosine --train.progress false --train.sample_every 0"
mkdir -p "$OUT"
. "$(dirname "$0")/lib.sh"  # run NAME ARGS...: train and evaluate once
case " $PARTS " in *" m2 "*)
  for s in $SEEDS; do
    run "m2-s$s" --model m2 --data.labels_per_class 100 --train.epochs "$EPOCHS" --seed "$s"
    run "classifier-s$s" --model classifier --data.labels_per_class 100 --train.epochs "$EPOCHS" --seed "$s"
  done;; esac
case " $PARTS " in *" draw "*)
  # side by side, one thread each: a loaded machine slows both alike
  [ -f "$OUT/compare/compare.md" ] || MINUTES="$MINUTES" bash "$(dirname "$0")/side_by_side.sh" \
    "$OUT/compare" vae,draw > "$OUT/compare.log" 2>&1;; esac
case " $PARTS " in *" cond "*)
  run draw-cond --model draw_cond --train.epochs "$EPOCHS";; esac
python - "$OUT" <<'PY'
import json, statistics, sys
from pathlib import Path
out = Path(sys.argv[1])
def accuracies(name):
    return [json.loads(f.read_text())["classification"]["accuracy"] * 100
            for f in sorted(out.glob(f"{name}-s*/eval/metrics.json"))]
def fmt(v):
    sd = statistics.stdev(v) if len(v) > 1 else 0.0
    return f"{statistics.mean(v):.2f} +- {sd:.2f} ({', '.join(f'{a:.2f}' for a in v)})"
m2, cls = accuracies("m2"), accuracies("classifier")
if m2 and cls:
    print("100 labels per class, test accuracy % over the seeds:")
    print(f"  classifier {fmt(cls)}\n  m2         {fmt(m2)}")
    print(f"  m2 - classifier: {statistics.mean(m2) - statistics.mean(cls):+.2f}")
if (out / "compare/compare.md").exists():
    print((out / "compare/compare.md").read_text())
m = out / "draw-cond/eval/metrics.json"
if m.exists():
    g = json.loads(m.read_text())["generation"]
    print(f"draw_cond: samples of the class asked for, evaluator accuracy {g['conditional_accuracy']:.4f}")
PY
