#!/usr/bin/env bash
# Chooses vaegan's gamma_dec (the weight of the feature-space reconstruction against the GAN
# term in the decoder's loss) on a VALIDATION split carved from the training images (10,000
# held out, split seed 0), never on the test set: one run per value on the same wall-clock
# budget, scored by the sample Frechet distance (evaluator features), precision, recall and
# sharpness on the held-out images. Resumable.
#   bash bench/vaegan_validation.sh [OUT]     env: GAMMAS ("0.001 0.01 0.1"), MINUTES (2)
set -u
OUT="${1:-runs/vaegan-validation}"; GAMMAS="${GAMMAS:-0.001 0.01 0.1}"; MINUTES="${MINUTES:-2}"
mkdir -p "$OUT"
for g in $GAMMAS; do
  name="gamma$g"
  [ -f "$OUT/$name/eval/metrics.json" ] && continue
  ssavae train --out "$OUT/$name" --model vaegan --model.gamma_dec "$g" --data fashion-mnist \
    --data.validation_size 10000 --data.evaluate_on validation --train.max_minutes "$MINUTES" \
    --train.epochs 1000 --train.progress false --train.sample_every 0 > "$OUT/$name.log" 2>&1 \
    && ssavae evaluate "$OUT/$name" --n 10000 >> "$OUT/$name.log" 2>&1 || echo "$name failed (see $OUT/$name.log)"
done
python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print("| gamma_dec | Frechet dist. | precision | recall | sample sharpness / real | recon MSE |")
print("|---:|---:|---:|---:|---:|---:|")
for f in sorted(out.glob("gamma*/eval/metrics.json"), key=lambda f: float(f.parent.parent.name[5:])):
    m = json.loads(f.read_text())
    g, r = m["generation"], m["reconstruction"]
    print(f"| {f.parent.parent.name[5:]} | {g['frechet_distance']:.2f} | {g['precision']:.3f} | "
          f"{g['recall']:.3f} | {g['sharpness_vs_real']:.3f} | {r['pixel_mse']:.4f} |")
PY
