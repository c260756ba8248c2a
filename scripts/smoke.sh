#!/usr/bin/env bash
# The CLI's smoke test against an installed ssavae (CI runs it on the wheel in a fresh virtual
# environment): the version, then train, evaluate, sample, report and list-models on synthetic
# data, from an empty directory outside the repository.
#   bash scripts/smoke.sh [SSAVAE_EXECUTABLE] [EXPECTED_VERSION]
set -euo pipefail
exe="${1:-ssavae}"; want="${2:-}"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
got=$("$exe" --version | awk '{print $2}')
echo "ssavae --version: $got"
if [ -n "$want" ] && [ "$got" != "$want" ]; then
  echo "smoke: ssavae --version says $got, the wheel is $want" >&2; exit 1
fi
export SSAVAE_CACHE="$work/cache"
tiny=(--data synthetic --data.limit_train 256 --data.limit_test 128 --model.arch mlp --model.hidden 32
      --model.mlp_hidden "[64]" --train.progress false --train.sample_every 0)
"$exe" train --model ssavae --out run --model.vec_epochs 1 --model.decoder_epochs 1 "${tiny[@]}"
"$exe" evaluate run --n 64 --iw-samples 8
"$exe" sample run --n 16 --out samples.png
"$exe" report run
"$exe" list-models > /dev/null
for f in run/summary.json run/eval/metrics.json run/report.html samples.png; do
  [ -s "$f" ] || { echo "smoke: $f is missing" >&2; exit 1; }
done
echo "smoke: ok ($got)"
