#!/bin/bash
# One H100 call (~540 s): fine-tune KineST (and, alongside, the AvatarPoser-style baseline for the
# same number of windows) from the CPU checkpoints, then CUDA inference speed with/without mamba_ssm.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
T0=$(date +%s)
# (the training pack travels delta-coded to fit the 64 MiB tree limit; decoded here)
python3 scripts/pack_codec.py decode .gpu/train.small.npz /tmp/train.pack.npz
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
(MAX_JOBS=6 bash .gpu/build-mamba-ssm.sh .gpu/mamba_ssm-2.3.2.post1.tar.gz > $OUT/mamba_build.log 2>&1; echo "build rc $? at $(( $(date +%s) - T0 )) s" >> $OUT/mamba_build.log) &
timeout 500 python3 -m kinest_core.cli train --data /tmp/train.pack.npz --val .gpu/test.pack.npz --out /tmp/ap \
  --config .gpu/ap_gpu.json > $OUT/ap_train.log 2>&1 &
AP=$!
timeout 465 python3 -m kinest_core.cli train --data /tmp/train.pack.npz --val .gpu/test.pack.npz --out /tmp/k \
  --config .gpu/kinest_gpu.json > $OUT/kinest_train.log 2>&1
echo "kinest train rc $? at $(( $(date +%s) - T0 )) s"
grep -E "validation|skipped|budget|Error" $OUT/kinest_train.log | tail -12; tail -4 $OUT/kinest_train.log
mkdir -p $OUT/k && cp /tmp/k/checkpoint_last.json /tmp/k/log.jsonl $OUT/k/ && split -b 15M /tmp/k/checkpoint_last.safetensors $OUT/k/ckpt.part.
sha256sum /tmp/k/checkpoint_last.safetensors
wait $AP; echo "ap rc $? at $(( $(date +%s) - T0 )) s"; grep validation $OUT/ap_train.log | tail -3
mkdir -p $OUT/ap && cp /tmp/ap/checkpoint_last.* /tmp/ap/log.jsonl $OUT/ap/ 2>/dev/null
tail -2 $OUT/mamba_build.log
LEFT=$(( 545 - ($(date +%s) - T0) ))
echo "bench budget $LEFT s"
timeout $LEFT python3 benchmarks/cuda_inference.py --checkpoint /tmp/k/checkpoint_last --out $OUT/cuda_inference.json 2>&1 | tail -30
ls -la $OUT $OUT/k
