#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# Set up (if needed) and run the main job on the bundled example recording:
#   1. inspect the recording (what was detected, what looks wrong),
#   2. reconstruct it with the core library (motion .npz + SMPL-22 .bvh),
#   3. build the Blender extension zip for this platform, install it into a throw-away
#      headless Blender, import the recording there, reconstruct, bake and write FBX + BVH.
# Results go to out/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. .venv/bin/activate
example=examples/xror_sample1_cut.bsor
mkdir -p out
kinest inspect "$example"
kinest reconstruct "$example" -o out/example
python -m kinest_blender.build --output out/dist --platform linux-x64
zip=$(ls -t out/dist/*.zip | head -1)
python -m kinest_blender.headless --zip "$zip" --input "$example" \
  --fbx out/example_unity.fbx --preset UNITY --bvh out/example_blender.bvh --blend out/example.blend
echo "done: see out/ (example.npz, example.bvh, example_unity.fbx, example_blender.bvh, example.blend)"
