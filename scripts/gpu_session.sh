#!/bin/bash
# One GPU call (device tool, <= 560 s, carry [".gpu"] from scripts/gpu_prepare.sh): stage 1 of KineST and
# of the AvatarPoser-style baseline from scratch, side by side on the one GPU, with the same recipe and
# window budget; weights, configs and logs come back in $OUT (checkpoints split into 15 MB parts:
# `cat k1.tar.part.* | tar x`). Stages 2+ are CPU fine-tunes here (README, "Training the shipped model").
#   KCFG / ACFG   stage-1 configs (default configs/kinest_gpu_smooth_scratch.json, configs/avatarposer_gpu_scratch.json)
#   KMIN          KineST's time cap in minutes (the cosine schedule ends there if iterations do not)
#   ARGS          extra `kinest train` flags for both (the CPU dry run: ARGS="--tiny --iterations 4 --batch-size 4")
#   VAL           what both validate on (default --val-split: the validation subjects, held out of training)
# The real-device recipe: KCFG=configs/kinest_gpu_realdevice.json bash scripts/gpu_session.sh
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
OUT=${OUT:-out/gpu_session}; mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)  # absolute: train() packs from inside $WORK
KCFG=${KCFG:-configs/kinest_gpu_smooth_scratch.json}; ACFG=${ACFG:-configs/avatarposer_gpu_scratch.json}
KMIN=${KMIN:-7.0}; ARGS=${ARGS:-}; WORK=${WORK:-/tmp/kinest_gpu}; VAL=${VAL:---val-split}
rm -rf "$WORK"; mkdir -p "$WORK/k1" "$WORK/ap1"
python3 scripts/pack_codec.py decode .gpu/train.small.npz "$WORK/train.pack.npz" || exit 1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
python3 - "$KCFG" "$KMIN" "$WORK/k1/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["max_minutes"] = float(sys.argv[2])
json.dump(c, open(sys.argv[3], "w"), indent=1)
PY
cp "$ACFG" "$WORK/ap1/config.json"
train() {  # name: trains $WORK/name with its config.json, then packs it into $OUT
  timeout $(( ${END:-545} - 20 - $(el) )) python3 -m kinest_core.cli train --data "$WORK/train.pack.npz" \
    $VAL --out "$WORK/$1" --config "$WORK/$1/config.json" $ARGS > "$WORK/$1/train.log" 2>&1
  echo "$1 rc $? at $(el) s"; grep -E "validation|skipped|budget|Error|error" "$WORK/$1/train.log" | tail -6
  (cd "$WORK/$1" && tar cf "$OUT/$1.tar" checkpoint_last.safetensors checkpoint_last.json log.jsonl train.log config.json) \
    && split -b 15M "$OUT/$1.tar" "$OUT/$1.tar.part." && rm "$OUT/$1.tar"
}
train ap1 & AP=$!
train k1
wait $AP
ls -la "$OUT"; echo "end at $(el) s"
