#!/usr/bin/env bash
# The paper's image claim on the TEST set: `ssavae demo` (SSAVAE at its defaults beside a VAE
# trained in the same run on the same wall-clock budget, with the same networks, latent size and
# ex-post sampler), timed, then both runs evaluated again on all 10,000 test images and the
# table written again from those numbers.
#   bash bench/claim.sh [OUT] [overrides...]       e.g. --model.vec_epochs 4 --model.decoder_epochs 2
set -eu
OUT="${1:-runs/claim}"; shift || true
start=$(date +%s)
ssavae demo --out "$OUT" "$@"
echo "demo wall time: $(( $(date +%s) - start )) s"
for f in ssavae vae; do ssavae evaluate "$OUT/$f" --n 10000 --iw-samples 100; done
ssavae demo --out "$OUT" "$@"  # trains nothing: the table again, on the full test set
