# Shared by the bench scripts (source it after setting OUT and COMMON).
# run NAME ARGS...: train OUT/NAME once with COMMON ARGS, then evaluate it on 10,000 test images;
# a run whose evaluation exists is skipped (the scripts resume), a failure is reported and the
# script goes on with the other runs (the log is OUT/NAME.log).
run() {
  local name=$1; shift
  [ -f "$OUT/$name/eval/metrics.json" ] && return 0
  ssavae train --out "$OUT/$name" $COMMON "$@" > "$OUT/$name.log" 2>&1 \
    && ssavae evaluate "$OUT/$name" --n 10000 >> "$OUT/$name.log" 2>&1 \
    || echo "$name failed (see $OUT/$name.log)"
}
