#!/usr/bin/env bash
# The paper's image claim on the TEST set: SSAVAE at its defaults beside a VAE trained in the
# same run on the same wall-clock budget (the demo with a longer schedule: both families get the
# same networks, latent size and ex-post sampler), both then evaluated on all 10,000 test images.
#   bash bench/claim.sh [OUT] [overrides...]       e.g. --model.beta 0.05
set -eu
OUT="${1:-runs/claim}"; shift || true
SCHEDULE="--model.vec_epochs 4 --model.decoder_epochs 2"
ssavae demo --out "$OUT" $SCHEDULE "$@"
for f in ssavae vae; do ssavae evaluate "$OUT/$f" --n 10000 --iw-samples 100; done
ssavae demo --out "$OUT" $SCHEDULE "$@"  # trains nothing: the table again, on the full test set
