#!/usr/bin/env bash
# Choosing the VEC's few-label defaults on a validation split (5,000 training images held out,
# never the test set): Fashion-MNIST, 100 labels per class (split seed 0), latent 100, seed 0,
# 10 epochs with a cosine learning rate. One run per setting into OUT/<name>; prints the table.
#   bash bench/vec_validation.sh [OUT] [extra overrides...]
set -u
OUT="${1:-runs/vec-validation}"; shift || true
COMMON="--data fashion-mnist --data.labels_per_class 100 --data.validation_size 5000 --data.evaluate_on validation --train.lr_schedule cosine --train.progress false --train.sample_every 0 $*"
# every row pins its unlabeled-data terms (the defaults changed as these rows chose them)
VEC="--model ssavae --model.latent_dim 100 --model.vec_epochs 10 --model.decoder_epochs 0 --model.vec_recon_weight 0 --model.consistency_weight 0"
run() {  # name, overrides
  [ -f "$OUT/$1/summary.json" ] || ssavae train --out "$OUT/$1" $COMMON $2 > "$OUT/$1.log" 2>&1
  printf '%-28s %s\n' "$1" "$(python -c "import json;print(json.load(open('$OUT/$1/summary.json'))['classification.accuracy'])" 2>/dev/null || echo failed)"
}
mkdir -p "$OUT"
run classifier-shift      "--model classifier --train.epochs 10 --model.augment shift"
run vec-shift             "$VEC --model.augment shift"
run vec-shift-cons        "$VEC --model.augment shift --model.consistency_weight 1"
run vec-shift-ent         "$VEC --model.augment shift --model.entropy_weight 0.1"
run vec-shift-cons-ent    "$VEC --model.augment shift --model.consistency_weight 1 --model.entropy_weight 0.1"
run classifier-none       "--model classifier --train.epochs 10 --model.augment none"
run vec-none              "$VEC --model.augment none"
run classifier-flip-shift "--model classifier --train.epochs 10 --model.augment flip-shift"
run vec-flip-shift-cons   "$VEC --model.augment flip-shift --model.consistency_weight 1"
# levers for the few-label gap (ssavae 0.3): the unlabeled share of each step, the auxiliary decoder
run vec-shift-cons-b448   "$VEC --model.augment shift --model.consistency_weight 1 --train.batch_size 448"
run vec-aux-cons          "$VEC --model.augment shift --model.vec_recon_weight 1 --model.lambda_cls 10 --model.consistency_weight 10"
# the auxiliary decoder at the weights that became the default for latent_dim > 2 (0.1 recon, 1 CE, 1 consistency)
run vec-aux0.1-cons       "$VEC --model.augment shift --model.vec_recon_weight 0.1 --model.consistency_weight 1"
