#!/bin/bash
# Session 3, one H100 call (<= 560 s): KineST from scratch with exactly the AvatarPoser-style baseline's
# recipe and budget (1,825 x 256 = 467,200 windows, Adam lr 1e-3, 150 warm-up, cosine by iterations, seed 1),
# in the fastest precision a 40 s probe finds; then, if time is left, the baseline again in that precision.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
DEV=${DEV:-cuda}; END=${END:-545}
python3 scripts/pack_codec.py decode .gpu/train.small.npz /tmp/train.pack.npz || exit 1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
timeout 90 python3 .gpu/probe.py /tmp/train.pack.npz ${PROBE_BATCH:-256} ${PROBE_ITERS:-12} "${PROBE_MODEL:-{\}}" > $OUT/probe.json 2> $OUT/probe.log
cat $OUT/probe.log | grep -v Warn; echo "probe done at $(el) s"
CHOSEN=${FORCE:-}; [ -n "$CHOSEN" ] || CHOSEN=$(python3 -c "import json;print(json.load(open('$OUT/probe.json'))['chosen'])" 2>/dev/null || echo tf32)
MIN=$(python3 -c "print(round(min(6.0, ($END - 125 - $(el)) / 60.0), 2))")
python3 - "$CHOSEN" "$MIN" "$DEV" "${EXTRA:-{\}}" <<'PY'
import json, sys
c = json.load(open(".gpu/kinest_scratch.json"))
c.update(amp=sys.argv[1] == "bf16", matmul_precision="highest" if sys.argv[1] == "fp32" else "high",
         max_minutes=float(sys.argv[2]), device=sys.argv[3], **json.loads(sys.argv[4]))
json.dump(c, open("/tmp/kcfg.json", "w"), indent=1)
c.update(model="avatarposer", max_minutes=0.0, model_config={k: v for k, v in c.get("model_config", {}).items() if k == "preset"})
json.dump(c, open("/tmp/apcfg.json", "w"), indent=1)
PY
echo "chosen $CHOSEN, kinest budget $MIN min"; cat /tmp/kcfg.json | tr -d '\n '; echo
mkdir -p /tmp/k /tmp/ap
timeout $(( END - 60 - $(el) )) python3 -m kinest_core.cli train --data /tmp/train.pack.npz --val .gpu/test.pack.npz \
  --out /tmp/k --config /tmp/kcfg.json > /tmp/k/train.log 2>&1
echo "kinest rc $? at $(el) s"; grep -E "validation|skipped|budget|Error|error" /tmp/k/train.log | tail -8; tail -2 /tmp/k/train.log
cp /tmp/kcfg.json /tmp/k/ 2>/dev/null
(cd /tmp/k && tar cf $OUT/k.tar checkpoint_last.safetensors checkpoint_last.json log.jsonl train.log kcfg.json) && split -b 15M $OUT/k.tar $OUT/k.tar.part. && rm $OUT/k.tar
LEFT=$(( END - 15 - $(el) ))
echo "time left for the baseline: $LEFT s"
if [ "$CHOSEN" != fp32 ] && [ $LEFT -gt 100 ]; then
  timeout $LEFT python3 -m kinest_core.cli train --data /tmp/train.pack.npz --val .gpu/test.pack.npz \
    --out /tmp/ap --config /tmp/apcfg.json > /tmp/ap/train.log 2>&1
  echo "ap rc $? at $(el) s"; grep validation /tmp/ap/train.log | tail -3; tail -1 /tmp/ap/train.log
  cp /tmp/apcfg.json /tmp/ap/
  (cd /tmp/ap && tar cf $OUT/ap.tar checkpoint_last.safetensors checkpoint_last.json log.jsonl train.log apcfg.json)
fi
ls -la $OUT; echo "end at $(el) s"
