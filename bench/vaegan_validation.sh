#!/usr/bin/env bash
# Chooses vaegan's defaults (gamma_dec: the weight of the feature-space reconstruction against
# the GAN term in the decoder's loss; Larsen's equilibrium gate; spectral norm on the
# discriminator) on a VALIDATION split carved from the training images (10,000 held out, split
# seed 0), never on the test set: one run per setting on the same budget, scored by the sample
# Frechet distance (evaluator features), precision, recall and sharpness on the held-out images.
# Resumable.   bash bench/vaegan_validation.sh [OUT] [budget overrides, e.g. --train.epochs 1]
set -u
OUT="${1:-runs/vaegan-validation}"; shift || true
BUDGET="${*:---train.epochs 1}"
mkdir -p "$OUT"
while read -r name args; do
  [ -z "$name" ] && continue
  [ -f "$OUT/$name/eval/metrics.json" ] && continue
  ssavae train --out "$OUT/$name" --model vaegan $args --data fashion-mnist \
    --data.validation_size 10000 --data.evaluate_on validation $BUDGET \
    --train.progress false --train.sample_every 0 > "$OUT/$name.log" 2>&1
  ssavae evaluate "$OUT/$name" --n 10000 >> "$OUT/$name.log" 2>&1 || echo "$name failed (see $OUT/$name.log)"
done <<'SETTINGS'
g0.01-eq        --model.gamma_dec 0.01 --model.equilibrium true
g1-eq           --model.gamma_dec 1 --model.equilibrium true
g1-noeq         --model.gamma_dec 1 --model.equilibrium false
g1-noeq-sn      --model.gamma_dec 1 --model.equilibrium false --model.disc_spectral_norm true
g0.01-noeq-sn   --model.gamma_dec 0.01 --model.equilibrium false --model.disc_spectral_norm true
g10-noeq-sn     --model.gamma_dec 10 --model.equilibrium false --model.disc_spectral_norm true
SETTINGS
python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print("| setting | Frechet dist. | precision | recall | sample sharpness / real | recon MSE | guard |")
print("|---|---:|---:|---:|---:|---:|---|")
for f in sorted(out.glob("*/eval/metrics.json")):
    m, run = json.loads(f.read_text()), f.parent.parent
    g, r = m["generation"], m["reconstruction"]
    alarmed = "alarmed" if "stability guard" in (out / f"{run.name}.log").read_text() else "-"
    print(f"| {run.name} | {g['frechet_distance']:.2f} | {g['precision']:.3f} | {g['recall']:.3f} | "
          f"{g['sharpness_vs_real']:.3f} | {r['pixel_mse']:.4f} | {alarmed} |")
PY
