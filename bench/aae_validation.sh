#!/usr/bin/env bash
# Choosing aae_semi's defaults on a VALIDATION split (5,000 training images held out, never the
# test set): Fashion-MNIST, 100 labels per class (split seed 0), seed 0, cosine learning rate.
# One run per setting; prints the validation accuracy beside the classifier baseline's row of
# bench/vec_validation.sh (84.02 % at 10 epochs, augment shift).
#   bash bench/aae_validation.sh [OUT]      env: EPOCHS (5), NAMES (the settings to run; all)
set -u
OUT="${1:-runs/aae-validation}"; EPOCHS="${EPOCHS:-5}"
COMMON="--model aae_semi --data fashion-mnist --data.labels_per_class 100 --data.validation_size 5000 --data.evaluate_on validation --train.lr_schedule cosine --train.progress false --train.sample_every 0 --train.epochs $EPOCHS"
mkdir -p "$OUT"
while read -r name args; do
  [ -z "$name" ] && continue
  [ -n "${NAMES:-}" ] && [[ " $NAMES " != *" $name "* ]] && continue
  [ -f "$OUT/$name/summary.json" ] || ssavae train --out "$OUT/$name" $COMMON $args > "$OUT/$name.log" 2>&1
  printf '%-24s %s\n' "$name" "$(python -c "import json;print(json.load(open('$OUT/$name/summary.json'))['classification.accuracy'])" 2>/dev/null || echo failed)"
done <<'SETTINGS'
semi-paper            --model.consistency_weight 0
semi-cons       --model.consistency_weight 1
semi-cls-lr3    --train.step_lr {"cls":0.003}
semi-gen-lr1    --train.step_lr {"gen":0.0001}
SETTINGS
