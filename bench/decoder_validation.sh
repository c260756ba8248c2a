#!/usr/bin/env bash
# Choosing SSAVAE's step-2 defaults on a validation split (5,000 training images held out, never
# the test set): Fashion-MNIST, all labels, latent 100, seed 0. One VEC (4 epochs, with the
# per-class ex-post sampler fitted at its end), then one decoder per setting (2 epochs) started
# from it, each evaluated (`ssavae evaluate`, 5,000 validation images), beside a VAE with the same
# budget (6 epochs) and both samplers. Prints one line per run. GROUPS picks the rows: "base"
# (the 0.2 study: upsampling, sampler, spectral norm, pixel term on the paper's VEC), "aux" (the
# auxiliary-decoder VEC, one decoder per adversarial weight beta), "bilinear" (the same with
# bilinear upsampling in step 2), "vae".
#   bash bench/decoder_validation.sh [OUT] [GROUPS]
set -u
OUT="${1:-runs/decoder-validation}"
GROUPS_="${2:-base aux vae}"
COMMON="--data fashion-mnist --data.validation_size 5000 --data.evaluate_on validation --train.progress false --train.sample_every 0"
S="--model ssavae --model.latent_dim 100 --model.vec_epochs 4 --model.decoder_epochs 2 --model.sampler class-gaussian"
mkdir -p "$OUT"
show() {
  python - "$OUT/$1" <<'PY'
import json, sys
m = json.load(open(sys.argv[1] + "/eval/metrics.json"))
r, g = m.get("reconstruction", {}), m.get("generation", {})
print(f"{sys.argv[1].split('/')[-1]:34s} acc {m.get('classification', {}).get('accuracy', float('nan')):.4f}"
      f"  rec mse {r['pixel_mse']:.4f} kept {r['class_consistency']:.3f} sharp {r['sharpness_vs_real']:.2f} tex {r['texture_vs_real']:.2f}"
      f" peaks {r.get('peaks_vs_real', float('nan')):.1f}"
      f"  | FD {g['frechet_distance']:.1f} P {g['precision']:.2f} R {g['recall']:.2f} sharp {g['sharpness_vs_real']:.2f} tex {g['texture_vs_real']:.2f}"
      f" peaks {g.get('peaks_vs_real', float('nan')):.1f}")
PY
}
cell() {  # name, overrides[, VEC run]: a decoder from a shared VEC
  if [ ! -f "$OUT/$1/eval/metrics.json" ]; then
    [ -f "$OUT/$1/summary.json" ] || ssavae train --out "$OUT/$1" $COMMON $S --init-from "$OUT/${3:-vec}" $2 > "$OUT/$1.log" 2>&1
    ssavae evaluate "$OUT/$1" --iw-samples 100 >> "$OUT/$1.log" 2>&1
  fi
  show "$1"
}
vec() {  # name, overrides: a VEC alone, shared by the cells after it
  [ -f "$OUT/$1/summary.json" ] || ssavae train --out "$OUT/$1" $COMMON $S $2 --model.decoder_epochs 0 > "$OUT/$1.log" 2>&1
}
if [[ " $GROUPS_ " == *" base "* ]]; then
  vec vec ""
  cell transposed             "--model.upsample transposed"
  cell resize                 "--model.upsample resize"
  cell resize-prior           "--model.upsample resize --model.sampler prior"
  cell resize-sn              "--model.upsample resize --model.disc_spectral_norm true"
  cell resize-pixel           "--model.upsample resize --model.pixel_weight 0.01"
fi
if [[ " $GROUPS_ " == *" aux "* ]]; then
  AUX="--model.vec_recon_weight 0.1 --model.decoder_init aux"
  vec vec-aux "$AUX"
  for b in 0.005 0.02 0.05 0.1; do cell "aux-beta$b" "$AUX --model.beta $b" vec-aux; done
fi
if [[ " $GROUPS_ " == *" bilinear "* ]]; then  # step 2 with bilinear upsampling, from the same VEC
  AUX="--model.vec_recon_weight 0.1 --model.decoder_init aux"  # (its Aux was trained with nearest)
  vec vec-aux "$AUX"
  for b in 0.005 0.05; do cell "aux-bilinear-beta$b" "$AUX --model.beta $b --model.upsample bilinear" vec-aux; done
fi
[[ " $GROUPS_ " == *" vae "* ]] || exit 0
for v in prior class-gaussian; do
  if [ ! -f "$OUT/vae-$v/eval/metrics.json" ]; then
    [ -f "$OUT/vae-$v/summary.json" ] || ssavae train --out "$OUT/vae-$v" --model vae --model.latent_dim 100 --model.sampler $v --train.epochs 6 $COMMON > "$OUT/vae-$v.log" 2>&1
    ssavae evaluate "$OUT/vae-$v" --iw-samples 100 >> "$OUT/vae-$v.log" 2>&1
  fi
  show "vae-$v"
done
