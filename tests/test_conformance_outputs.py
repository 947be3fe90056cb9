# SPDX-License-Identifier: GPL-3.0-or-later
"""Conformance: outputs are checked before the work, written beside the target and renamed,
never over the input, never half-written, never holding NaN; failures name the path."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from kinest_core.cli import main
from kinest_core.errors import OutputFileError, ReconstructionError
from kinest_core.inference import reconstruct
from kinest_core.io import read_tracking
from kinest_core.io.bvh import write_motion_bvh
from kinest_core.model import KineST, KineSTConfig, save_checkpoint
from kinest_core.outputs import check_output, staged_outputs
from kinest_core.types import Motion

FIX = Path(__file__).resolve().parent / "fixtures"
TAKE = FIX / "vr" / "km_moore_cross_domain23_first300.csv"
MOCAP = FIX / "mocap" / "02_01_cut.bvh"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp("ck") / "tiny", KineST(KineSTConfig.tiny()).eval())


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    code = main(list(argv))
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert not any("Traceback" in ln for ln in err), err
    return code, err


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if ".part" in p.name]


def test_output_equal_to_input_is_refused(tmp_path: Path, tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    take = tmp_path / "take.npz"
    read_tracking(TAKE).save_npz(str(take))
    before = npz_before = take.read_bytes()
    code, err = _run(capsys, "reconstruct", str(take), "-o", str(take), "--checkpoint", str(tiny), "--quiet")
    assert code == 1 and len(err) == 1 and "is the input file" in err[0], err
    assert take.read_bytes() == before
    bvh = tmp_path / "take.bvh"
    shutil.copy(MOCAP, bvh)
    before = bvh.read_bytes()
    code, err = _run(capsys, "reconstruct", str(bvh), "-o", str(tmp_path / "take"), "--checkpoint", str(tiny))
    assert code == 1 and "take.bvh: is the input file" in err[-1], err
    assert bvh.read_bytes() == before and take.read_bytes() == npz_before  # neither file of "take" touched
    link = tmp_path / "alias.npz"
    link.symlink_to(take)
    code, err = _run(capsys, "reconstruct", str(take), "-o", str(link), "--checkpoint", str(tiny), "--quiet")
    assert code == 1 and "is the input file" in err[0]


def test_unwritable_output_is_found_before_the_network_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    missing_model = tmp_path / "none.safetensors"  # would fail only once the model loads
    code, err = _run(
        capsys, "reconstruct", str(TAKE), "-o", str(blocker / "out.npz"), "--checkpoint", str(missing_model)
    )
    assert code == 1 and len(err) == 1 and "out.npz" in err[0] and "none.safetensors" not in err[0], err
    (tmp_path / "dir.npz").mkdir()
    code, err = _run(capsys, "reconstruct", str(TAKE), "-o", str(tmp_path / "dir.npz"), "--checkpoint", "x")
    assert code == 1 and "is a folder" in err[0]


def test_npz_input_is_read_and_checked_like_every_format(
    tmp_path: Path, tiny: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seq = read_tracking(TAKE)
    bad = tmp_path / "bad.npz"
    np.savez(bad, times=seq.times, head=seq.head, left_wrist=seq.left_wrist, right_wrist=seq.right_wrist, fps=0.0)
    code, err = _run(capsys, "reconstruct", str(bad), "-o", str(tmp_path / "o.npz"), "--checkpoint", str(tiny))
    assert code == 1 and "'fps'" in err[-1] and not (tmp_path / "o.npz").exists()
    (tmp_path / "junk.npz").write_bytes(b"PK\x05\x06" + b"\x00" * 18)
    code, err = _run(capsys, "reconstruct", str(tmp_path / "junk.npz"), "-o", str(tmp_path / "o.npz"))
    assert code == 1 and "junk.npz" in err[-1]
    good = tmp_path / "good.npz"
    seq.save_npz(str(good))
    code, err = _run(capsys, "reconstruct", str(good), "-o", str(tmp_path / "o"), "--checkpoint", str(tiny), "--quiet")
    assert code == 0 and (tmp_path / "o.npz").exists() and (tmp_path / "o.bvh").exists(), err
    assert Motion.load_npz(str(tmp_path / "o.npz")).fps == 60.0 and not _leftovers(tmp_path)


def test_disk_full_names_the_path_and_leaves_the_old_file(tmp_path: Path, tiny: Path) -> None:
    """A real write failure: the file size limit makes every write past 64 kB fail with EFBIG."""
    out = tmp_path / "out.npz"
    out.write_bytes(b"old result")
    script = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))\n"
        "from kinest_core.cli import main\n"
        f"sys.exit(main(['reconstruct', {str(TAKE)!r}, '-o', {str(out)!r}, '--checkpoint', {str(tiny)!r}, "
        "'--quiet', '--device', 'cpu']))\n"
    )
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    err = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 1 and len(err) == 1, res.stderr
    assert str(out) in err[0] and "cannot write" in err[0] and "full" in err[0], err
    assert out.read_bytes() == b"old result" and not _leftovers(tmp_path)


def test_bvh_writer_and_motion_npz_refuse_nan_and_bad_fps(tmp_path: Path) -> None:
    q = np.tile([1.0, 0.0, 0.0, 0.0], (10, 22, 1))
    root = np.zeros((10, 3))
    rest = np.zeros((22, 3))
    rest[1:, 2] = 0.1
    bad_q = q.copy()
    bad_q[4, 3, 0] = np.nan
    with pytest.raises(OutputFileError, match="NaN"):
        write_motion_bvh(str(tmp_path / "a.bvh"), bad_q, root, rest, 60.0)
    with pytest.raises(OutputFileError, match="fps"):
        write_motion_bvh(str(tmp_path / "b.bvh"), q, root, rest, 0.0)
    m = Motion(q, root, np.zeros((10, 22, 3)), rest, fps=float("nan"))
    with pytest.raises(OutputFileError, match="fps"):
        m.save_npz(str(tmp_path / "c.npz"))
    m = Motion(q, np.full((10, 3), np.inf), np.zeros((10, 22, 3)), rest)
    with pytest.raises(OutputFileError, match="NaN or inf"):
        m.save_npz(str(tmp_path / "d.npz"))
    assert sorted(os.listdir(tmp_path)) == []


def test_staged_outputs_all_or_nothing(tmp_path: Path) -> None:
    a, b = tmp_path / "a.npz", tmp_path / "b.bvh"
    a.write_text("old a")
    with pytest.raises(RuntimeError), staged_outputs(a, b) as (ta, tb):
        ta.write_text("new a")
        raise RuntimeError("failed while writing b")
    assert a.read_text() == "old a" and not b.exists() and not _leftovers(tmp_path)
    with staged_outputs(a, b) as (ta, tb):
        ta.write_text("new a")
        tb.write_text("new b")
    assert a.read_text() == "new a" and b.read_text() == "new b" and not _leftovers(tmp_path)
    with pytest.raises(OutputFileError, match="is the input file"):
        check_output(a, inputs=[str(a)])


def test_non_finite_reconstruction_is_an_error_never_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    model = KineST(KineSTConfig.tiny()).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(3e38)  # finite weights whose products overflow: the network returns inf/NaN
    with pytest.raises(ReconstructionError, match="NaN or inf"):
        reconstruct(read_tracking(TAKE), model=model, device="cpu")
    ck = save_checkpoint(tmp_path / "huge", model)
    code, err = _run(capsys, "reconstruct", str(TAKE), "-o", str(tmp_path / "o"), "--checkpoint", str(ck), "--quiet")
    assert code == 1 and len(err) == 1 and "NaN or inf" in err[0], err
    assert not (tmp_path / "o.npz").exists() and not (tmp_path / "o.bvh").exists() and not _leftovers(tmp_path)


def test_jitter_output_over_its_input_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    q = np.tile([1.0, 0.0, 0.0, 0.0], (30, 22, 1))
    rest = np.zeros((22, 3))
    rest[1:, 2] = 0.1
    motion = tmp_path / "m.npz"
    Motion(q, np.zeros((30, 3)), np.random.default_rng(0).normal(size=(30, 22, 3)), rest).save_npz(str(motion))
    before = motion.read_bytes()
    code, err = _run(capsys, "jitter", str(motion), "--smooth", "0.5", "-o", str(motion))
    assert code == 1 and "is the input file" in err[-1] and motion.read_bytes() == before, err
