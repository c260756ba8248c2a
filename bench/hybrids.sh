#!/usr/bin/env bash
# The hybrids of docs/methods.md, sections 3-5 on Fashion-MNIST (TEST set), seed 0, all labels:
#   1. cvae: the evaluator's accuracy on samples asked for class k, and the style-transfer figure
#   2. cvae_completion (bottom half from the top half) against a VAE that decodes the nearest
#      code (the VAE trained on the same budget), error on the missing half, class kept, figure
#   3. compare: vae, vaegan, ssavae, cvae, cvae_cgan on the same wall-clock budget and sampler
# Resumable (finished runs are skipped).
#   bash bench/hybrids.sh [OUT]   env: EPOCHS (cvae, completion, vae; 10), MINUTES (compare; 5), DATA,
#                                 PARTS ("runs compare": the epoch-budget runs 1-2, the compare 3)
set -eu
OUT="${1:-runs/hybrids}"; EPOCHS="${EPOCHS:-10}"; MINUTES="${MINUTES:-5}"; DATA="${DATA:-fashion-mnist}"
PARTS="${PARTS:-runs compare}"
COMMON="--data $DATA --train.progress false --train.sample_every 0"
mkdir -p "$OUT"
. "$(dirname "$0")/lib.sh"  # run NAME ARGS...: train and evaluate once
if [[ " $PARTS " == *" runs "* ]]; then
run cvae --model cvae --train.epochs "$EPOCHS"
run completion --model cvae_completion --model.observe top-half --train.epochs "$EPOCHS"
run vae --model vae --train.epochs "$EPOCHS" --model.upsample resize
python - "$OUT" <<'PY'
import json, sys
from pathlib import Path

import torch

from ssavae.data import to_float
from ssavae.eval.completion import nearest_code_completion, pool_images
from ssavae.eval.evaluator import get_evaluator
from ssavae.eval.figures import save_grid
from ssavae.eval.run_figures import completion_rows
from ssavae.runs import load_model, prepare_data

out = Path(sys.argv[1])
m = json.loads((out / "cvae/eval/metrics.json").read_text())
print(f"cvae: evaluator accuracy on samples of the class asked for "
      f"{m['generation']['conditional_accuracy']:.4f} ({m['n_test']} samples); "
      f"figure {out}/cvae/figures/style_transfer.png")
model, cfg = load_model(out / "completion")
vae, _ = load_model(out / "vae")
ds, _ = prepare_data(cfg)
ev = get_evaluator(ds)
x = to_float(ds.x_test).to(model.device)
y = torch.from_numpy(ds.y_test)
mask = torch.cat([model.observed_mask(min(500, len(x) - i)) for i in range(0, len(x), 500)])
base = nearest_code_completion(vae, x, mask, pool_images(ds, 20000))
miss = 1 - mask
def missing_mse(c):
    return float((((c - x) ** 2) * miss).flatten(1).sum(1).div(miss.flatten(1).sum(1)).mean())
cm = json.loads((out / "completion/eval/metrics.json").read_text())["completion"]
rows = {"cvae_completion (4 draws, mean error)": (cm["missing_mse"], cm["class_kept"], cm["diversity"]),
        "vae, nearest decoded code (20,000 training images)": (
            missing_mse(base), float((ev.predict(base).cpu() == y).float().mean()), 0.0)}
print("| completion of the bottom half | MSE on the missing half | class kept | diversity |")
print("|---|---:|---:|---:|")
for k, (mse, kept, div) in rows.items():
    print(f"| {k} | {mse:.4f} | {kept:.3f} | {div:.4f} |")
fig = completion_rows(model, ds, count=8, draws=6)  # shown, truth, 6 draws per row
fig = torch.cat([fig.view(8, 8, *fig.shape[1:]), base[:8, None].to(fig.device)], 1).flatten(0, 1)
print("figure:", save_grid(out / "completion_vs_vae.png", fig, nrow=9),
      "(per row: what is shown, the truth, 6 draws of cvae_completion, the VAE's nearest code)")
PY
fi
if [[ " $PARTS " == *" compare "* ]]; then
  # every family samples from per-class Gaussians fitted to its training codes (as the demo)
  ssavae compare --models vae,vaegan,ssavae,cvae,cvae_cgan --data "$DATA" --model.sampler class-gaussian \
    --budget "minutes=$MINUTES" --out "$OUT/compare" --train.progress false --train.sample_every 0
fi
