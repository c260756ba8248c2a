#!/usr/bin/env bash
# Choosing the categorical AAEs' defaults on a VALIDATION split (5,000 training images held out,
# never the test set): Fashion-MNIST, split seed 0, seed 0, cosine learning rate, one run per
# setting.
#   aae_semi (100 labels per class): prints the validation accuracy, beside the classifier
#     baseline's row of bench/vec_validation.sh (84.02 % at 10 epochs, augment shift)
#   aae_cluster (no labels): prints the clustering accuracy on the validation images (each
#     cluster takes the label of its most confident training image), by majority, clusters used
#   bash bench/aae_validation.sh [OUT]   env: EPOCHS (5), CLUSTER_EPOCHS (1), NAMES (settings; all)
set -u
OUT="${1:-runs/aae-validation}"; EPOCHS="${EPOCHS:-5}"; CLUSTER_EPOCHS="${CLUSTER_EPOCHS:-1}"
BASE="--data fashion-mnist --data.validation_size 5000 --data.evaluate_on validation --train.lr_schedule cosine --train.progress false --train.sample_every 0"
COMMON="--model aae_semi --data.labels_per_class 100 $BASE --train.epochs $EPOCHS"
mkdir -p "$OUT"
. "$(dirname "$0")/lib.sh"  # run NAME ARGS...: train and evaluate once
wanted() { [ -n "$1" ] && { [ -z "${NAMES:-}" ] || [[ " $NAMES " == *" $1 "* ]]; }; }
while read -r name args; do
  wanted "$name" || continue
  [ -f "$OUT/$name/summary.json" ] || ssavae train --out "$OUT/$name" $COMMON $args > "$OUT/$name.log" 2>&1
  printf '%-24s %s\n' "$name" "$(python -c "import json;print(json.load(open('$OUT/$name/summary.json'))['classification.accuracy'])" 2>/dev/null || echo failed)"
done <<'SETTINGS'
semi-paper            --model.consistency_weight 0
semi-cons       --model.consistency_weight 1
semi-cls-lr3    --train.step_lr {"cls":0.003}
semi-gen-lr1    --train.step_lr {"gen":0.0001}
SETTINGS
COMMON="--model aae_cluster $BASE --train.epochs $CLUSTER_EPOCHS"
while read -r name args; do
  wanted "$name" || continue
  run "$name" $args
  python - "$OUT/$name/eval/metrics.json" "$name" <<'PY' 2>/dev/null || echo "$name failed"
import json, sys
c = json.load(open(sys.argv[1]))["clustering"]
print(f"{sys.argv[2]:<24} accuracy {c['accuracy']:.4f}  majority {c['accuracy_majority']:.4f}  used {c['used']}")
PY
done <<'SETTINGS'
cluster16-balance0    --model.num_clusters 16 --model.balance_weight 0
cluster16-balance1    --model.num_clusters 16 --model.balance_weight 1
cluster16-balance0.1  --model.num_clusters 16 --model.balance_weight 0.1
cluster16-balance5    --model.num_clusters 16 --model.balance_weight 5
cluster16-balance20   --model.num_clusters 16 --model.balance_weight 20
cluster16-balance50   --model.num_clusters 16 --model.balance_weight 50
cluster16-balance100  --model.num_clusters 16 --model.balance_weight 100
cluster30-balance50   --model.num_clusters 30 --model.balance_weight 50
cluster30-balance20   --model.num_clusters 30 --model.balance_weight 20
cluster30-balance5    --model.num_clusters 30 --model.balance_weight 5
SETTINGS
