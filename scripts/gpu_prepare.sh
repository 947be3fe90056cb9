#!/bin/bash
# Here (CPU, ~4 min the first time): put what scripts/gpu_session.sh needs into .gpu/ (git-ignored; pass
# carry [".gpu"] to the device tool): the training pack, delta-coded to fit the 64 MiB carry limit, and
# the test pack for validation during training.
set -euo pipefail
DATA=${DATA:-../shared/data/mocap}
PACK=${PACK:-runs/data_v5}
for split in train test; do
  [ -f "$PACK/$split.pack.npz" ] || python -m kinest_core.training.mocap_library "$DATA/$split" "$PACK/cache_$split" \
    --smooth-ms 8.3 --pack "$PACK/$split.pack.npz"
done
mkdir -p .gpu
python scripts/pack_codec.py encode "$PACK/train.pack.npz" .gpu/train.small.npz
cp "$PACK/test.pack.npz" .gpu/test.pack.npz
du -sh .gpu
