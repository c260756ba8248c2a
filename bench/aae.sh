#!/usr/bin/env bash
# The adversarial autoencoders of docs/methods.md, section 6 on Fashion-MNIST (TEST set):
#   1. aae_semi, 100 labels per class, split seed 0, one run per seed: test accuracy, beside the
#      supervised-only classifier of experiments/few-labels.yaml (same split, same augmentation, same epochs)
#   2. aae_cluster with 16 and 30 clusters, no labels, one run per seed: clustering accuracy by the
#      paper's protocol (each cluster takes the label of its most confident training image) and
#      by the majority label of each cluster
#   3. 2-D maps: aae with the mixture prior and label regularization (100 labels per class), aae
#      with the swiss roll, aae_dimred (100 labels per class)
# Resumable (finished runs are skipped). Prints the tables (mean +- std over the seeds).
#   bash bench/aae.sh [OUT]    env: SEEDS ("0 1 2"), EPOCHS (semi 10), CLUSTER_EPOCHS (10),
#                              MAP_EPOCHS (10), CLUSTERS ("16 30"), PARTS ("semi cluster maps"),
#                              MAPS ("mixture swiss-roll dimred": which maps)
set -u
OUT="${1:-runs/aae}"; SEEDS="${SEEDS:-0 1 2}"; EPOCHS="${EPOCHS:-10}"
CLUSTER_EPOCHS="${CLUSTER_EPOCHS:-10}"; MAP_EPOCHS="${MAP_EPOCHS:-10}"; CLUSTERS="${CLUSTERS:-16 30}"
PARTS="${PARTS:-semi cluster maps}"; MAPS="${MAPS:-mixture swiss-roll dimred}"
COMMON="--data fashion-mnist --data.split_seed 0 --train.lr_schedule cosine --train.progress false --train.sample_every 0"
mkdir -p "$OUT"
. "$(dirname "$0")/lib.sh"  # run NAME ARGS...: train and evaluate once
for s in $SEEDS; do
  case " $PARTS " in *" semi "*)
    run "semi-s$s" --model aae_semi --data.labels_per_class 100 --train.epochs "$EPOCHS" --seed "$s";; esac
  case " $PARTS " in *" cluster "*)
    for k in $CLUSTERS; do
      run "cluster$k-s$s" --model aae_cluster --model.num_clusters "$k" --train.epochs "$CLUSTER_EPOCHS" --seed "$s"
    done;; esac
done
case " $PARTS " in *" maps "*)
  for m in $MAPS; do
    case $m in
      mixture) run map-mixture --model aae --model.latent_dim 2 --model.prior mixture \
                 --model.label_regularization true --data.labels_per_class 100 --train.epochs "$MAP_EPOCHS";;
      swiss-roll) run map-swiss-roll --model aae --model.latent_dim 2 --model.prior swiss-roll \
                    --train.epochs "$MAP_EPOCHS";;
      dimred) run map-dimred --model aae_dimred --model.latent_dim 2 --data.labels_per_class 100 \
                --train.epochs "$MAP_EPOCHS";;
      *) echo "unknown map $m (mixture, swiss-roll, dimred)"; exit 2;;
    esac
  done;;
esac
python - "$OUT" <<'PY'
import json, re, statistics, sys
from pathlib import Path
out = Path(sys.argv[1])
fmt = lambda a: f"{statistics.mean(a):.2f} +- {statistics.stdev(a) if len(a) > 1 else 0:.2f} ({len(a)})"
def metrics(pattern):  # NAME-s<seed> runs only (not e.g. a renamed cluster16-s0-balance0)
    return [json.loads(f.read_text()) for f in sorted(out.glob(f"{pattern}/eval/metrics.json"))
            if re.fullmatch(pattern.replace("*", r"\d+"), f.parent.parent.name)]
semi = [m["classification"]["accuracy"] * 100 for m in metrics("semi-s*")]
if semi:
    print(f"aae_semi, 100 labels per class, test accuracy %: {fmt(semi)}")
print("| clusters | accuracy, most confident image (%) | accuracy, majority (%) | clusters used |")
print("|---:|---:|---:|---:|")
for k in sorted({p.name.split("-")[0][7:] for p in out.glob("cluster*-s*")}, key=int):
    ms = metrics(f"cluster{k}-s*")
    if ms:
        c = [m["clustering"]["accuracy"] * 100 for m in ms]
        j = [m["clustering"]["accuracy_majority"] * 100 for m in ms]
        print(f"| {k} | {fmt(c)} | {fmt(j)} | {fmt([m['clustering']['used'] for m in ms])} |")
for name in ("map-mixture", "map-swiss-roll", "map-dimred"):
    if (out / name / "figures" / "latent_map.png").exists():
        print(f"{name}: {out / name / 'figures' / 'latent_map.png'}")
PY
