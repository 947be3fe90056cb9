# SPDX-License-Identifier: GPL-3.0-or-later
"""``kinest prepare-amass``: AMASS + the user's SMPL-H model -> training/test motions (Protocol 1)."""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prepare-amass",
        help="convert AMASS (.npz) with your SMPL-H model into train/test motions (Protocol 1)",
        description="AMASS and SMPL-H are licence-gated: download them yourself (amass.is.tue.mpg.de, "
        "mano.is.tue.mpg.de). Writes OUT/train and OUT/test for kinest train / kinest evaluate.",
    )
    p.add_argument("--amass", required=True, help="AMASS root folder (holding CMU/, BMLrub/, HDM05/ ...)")
    p.add_argument(
        "--smplh",
        required=True,
        help="SMPL-H models: a folder with <gender>/model.npz (AMASS download) or smplh/SMPLH_<GENDER>.pkl (MANO), "
        "or one file. A .pkl is a Python pickle that smplx unpickles, which can run code: use only the files of "
        "the official downloads (the .npz models hold plain arrays)",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--datasets", nargs="+", default=["CMU", "BMLrub", "HDM05"], help="AMASS sub-datasets")
    p.add_argument(
        "--split-file", help="text file listing the test files (paths relative to --amass), e.g. AvatarPoser's lists"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from kinest_core.training.amass import prepare_amass, smplh_rest_joints

    test_files = None
    if args.split_file:
        with open(args.split_file, encoding="utf-8") as fh:
            test_files = {line.strip().replace("\\", "/") for line in fh if line.strip()}
    counts = prepare_amass(
        args.amass, args.out, smplh_rest_joints(args.smplh), args.datasets, test_files, progress=print
    )
    print(json.dumps(counts))
    return 0
