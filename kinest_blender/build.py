# SPDX-License-Identifier: GPL-3.0-or-later
"""Build the KineST extension zips, one per platform, with Blender's own builder and validator.

    python -m kinest_blender.build --output DIR [--platform linux-x64 ...]

Each zip carries in ``wheels/`` what Blender's Python lacks: the ``kinest_core`` wheel built
from this tree, a CPU build of torch and all of torch's and the core's dependencies, fetched
for Python 3.11 and that platform with ``pip download --only-binary=:all:``. numpy is left
out: Blender ships its own (1.26.x) and a second copy would shadow it. Linux CPU torch is not
on PyPI, so ``--index-url``/``--extra-index-url``/``--find-links`` reach PyTorch's CPU index
or a local folder. The committed manifest holds no wheels: a staging copy gets
``wheels = [...]`` and ``platforms = [...]``. Runs without bpy; uses Blender's
``blender_ext.py`` from the bpy wheel, or ``--blender`` for a Blender executable.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import tomllib

try:
    from packaging.requirements import Requirement
except ImportError:  # a bare venv: pip (which the build needs anyway) carries its own copy
    from pip._vendor.packaging.requirements import Requirement  # type: ignore[no-redef]

REPO = Path(__file__).resolve().parent.parent
PYTHON_VERSION = "3.11"
#: Blender's own numpy (4.4-5.0 ship 1.26.x): the resolver must pick wheels that work with it.
BLENDER_NUMPY = "1.26.4"
#: Wheels Blender already provides, never bundled.
PROVIDED_BY_BLENDER = ("numpy",)
DEFAULT_TORCH = "torch==2.13.0"
CPU_INDEX_HINT = "https://download.pytorch.org/whl/cpu"


@dataclass(frozen=True)
class Platform:
    """A Blender platform, the pip platform tags of its wheels and its marker values."""

    blender: str
    pip: tuple[str, ...]
    system: str = "Linux"
    machine: str = "x86_64"

    def marker_env(self) -> dict[str, str]:
        """PEP 508 marker environment of Blender's Python 3.11 on this platform."""
        sys_platform = {"Linux": "linux", "Windows": "win32", "Darwin": "darwin"}[self.system]
        return {
            "python_version": PYTHON_VERSION,
            "python_full_version": PYTHON_VERSION + ".9",
            "implementation_name": "cpython",
            "platform_python_implementation": "CPython",
            "implementation_version": PYTHON_VERSION + ".9",
            "os_name": "nt" if self.system == "Windows" else "posix",
            "sys_platform": sys_platform,
            "platform_system": self.system,
            "platform_machine": self.machine,
            "platform_release": "",
            "platform_version": "",
        }


PLATFORMS: dict[str, Platform] = {
    # Blender 4.4+ needs glibc 2.28; pip does not widen a given manylinux tag, so list the older ones.
    "linux-x64": Platform(
        "linux-x64",
        tuple(f"manylinux_2_{v}_x86_64" for v in (28, 27, 26, 24, 17)) + ("manylinux2014_x86_64",),
    ),
    "windows-x64": Platform("windows-x64", ("win_amd64",), "Windows", "AMD64"),
    # torch 2.13's macOS wheels need macOS 14 (Blender 4.4 itself runs from 11.2).
    "macos-arm64": Platform(
        "macos-arm64",
        tuple(f"macosx_{v}_0_arm64" for v in (14, 13, 12, 11)) + ("macosx_11_0_universal2", "macosx_10_9_universal2"),
        "Darwin",
        "arm64",
    ),
}
WHEEL_SETS = ("all", "no-torch", "core", "none")


class BuildError(RuntimeError):
    """A build step failed; the message says which and what to try."""


def log(msg: str) -> None:
    print(f"[kinest build] {msg}", flush=True)


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    """Run a command, raising BuildError with its output when it fails."""
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise BuildError(
            f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


def manifest() -> dict:
    with open(REPO / "blender_manifest.toml", "rb") as fh:
        return tomllib.load(fh)


def build_core_wheel(dest: Path) -> Path:
    """The ``kinest_core`` wheel from this tree (no dependencies, no network)."""
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("kinest_core-*.whl"):
        old.unlink()
    # Build from a clean copy: setuptools' build/ folder in the shared tree can hold stale modules.
    src = dest / "src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "setup.cfg", "MANIFEST.in"):
        if (REPO / name).is_file():
            shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "kinest_core", src / "kinest_core", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    cmd = [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-w", str(dest)]
    try:
        run(cmd)
    except BuildError:  # no setuptools in this Python: let pip fetch a build backend
        run([c for c in cmd if c != "--no-build-isolation"])
    wheels = sorted(dest.glob("kinest_core-*.whl"))
    if not wheels:
        raise BuildError(f"pip wheel wrote no kinest_core wheel into {dest}")
    return wheels[-1]


def download_wheels(
    core_wheel: Path, platform: Platform, dest: Path, wheel_set: str, torch_spec: str, index_args: list[str]
) -> list[Path]:
    """Every wheel the core needs on ``platform`` for Python 3.11 (Blender-provided ones dropped).

    pip evaluates dependency markers against the machine it runs on, not ``--platform`` (so a
    Linux build host pulls torch's CUDA wheels into a Windows zip). Hence the closure is walked
    here: each round downloads the open requirements with ``--no-deps`` and reads their
    ``Requires-Dist`` with the *target's* marker environment.
    """
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(core_wheel, dest / core_wheel.name)
    if wheel_set == "core":
        return [dest / core_wheel.name]
    constraints = dest / "constraints.txt"
    constraints.write_text(f"numpy=={BLENDER_NUMPY}\n")
    env = platform.marker_env()
    todo = [r for r in _wheel_requirements(dest / core_wheel.name, env)]
    if wheel_set == "all":
        todo.append(Requirement(torch_spec))
    have: dict[str, Path] = {_canon(_dist_name(core_wheel)): dest / core_wheel.name}
    skip = set(PROVIDED_BY_BLENDER) | ({"torch"} if wheel_set == "no-torch" else set())
    rounds = 0
    while todo:
        rounds += 1
        if rounds > 20:
            raise BuildError(f"{platform.blender}: dependency walk did not settle; open: {todo}")
        batch: dict[str, Requirement] = {}
        for req in todo:
            name = _canon(req.name)
            if name in PROVIDED_BY_BLENDER and not req.specifier.contains(BLENDER_NUMPY, prereleases=True):
                raise BuildError(
                    f"{platform.blender}: a wheel needs {req}, but Blender ships numpy {BLENDER_NUMPY}; "
                    "pin an older release of the package that asks for it"
                )
            if name in skip:
                continue
            if name in have:
                version = _wheel_version(have[name])
                if req.specifier and not req.specifier.contains(version, prereleases=True):
                    raise BuildError(
                        f"{platform.blender}: {have[name].name} does not satisfy {req} (needed by another wheel)"
                    )
                continue
            if name in batch:
                batch[name] = Requirement(f"{name}{batch[name].specifier & req.specifier}")
            else:
                batch[name] = Requirement(f"{name}{req.specifier}")
        todo = []
        if not batch:
            break
        before = set(dest.glob("*.whl"))
        _pip_download([str(r) for r in batch.values()], platform, dest, constraints, index_args)
        new = sorted(set(dest.glob("*.whl")) - before)
        for wheel in new:
            have[_canon(_dist_name(wheel))] = wheel
            todo.extend(_wheel_requirements(wheel, env))
        missing = [n for n in batch if n not in have]
        if missing:
            raise BuildError(f"{platform.blender}: pip fetched no wheel for {', '.join(missing)}")
    wheels = sorted(w for n, w in have.items() if n not in PROVIDED_BY_BLENDER)
    cuda = [w.name for w in wheels if _dist_name(w).startswith(("nvidia", "cuda")) or _dist_name(w) == "triton"]
    torch = [w for w in wheels if _dist_name(w) == "torch"]
    if cuda or (platform.blender == "linux-x64" and torch and "+cpu" not in torch[0].name):
        raise BuildError(
            f"{platform.blender}: the torch found is a CUDA build ({torch[0].name if torch else ', '.join(cuda[:3])}). "
            f"Pass --index-url {CPU_INDEX_HINT} (PyPI's Linux torch is the CUDA build) or --find-links to a CPU wheel."
        )
    if wheel_set == "all" and not torch:
        raise BuildError(f"{platform.blender}: no torch wheel was fetched")
    return wheels


def _pip_download(reqs: list[str], platform: Platform, dest: Path, constraints: Path, index_args: list[str]) -> None:
    cmd = [sys.executable, "-m", "pip", "download", *reqs, "-d", str(dest), "-c", str(constraints), "--no-deps"]
    cmd += ["--only-binary=:all:", "--python-version", PYTHON_VERSION, "--implementation", "cp"]
    cmd += ["--abi", "cp311", "--abi", "abi3", "--abi", "none"]
    for tag in platform.pip:
        cmd += ["--platform", tag]
    cmd += index_args
    log(f"{platform.blender}: pip download {' '.join(reqs)}")
    try:
        run(cmd)
    except BuildError as exc:
        raise BuildError(
            f"{exc}\nCould not fetch the wheels for {platform.blender}. Check the network or pass "
            f"--find-links DIR with the wheels, or --extra-index-url {CPU_INDEX_HINT} for CPU torch."
        ) from exc


def _wheel_requirements(wheel: Path, env: dict[str, str]) -> list[Requirement]:
    """A wheel's ``Requires-Dist`` that apply on the target (no extras)."""
    with zipfile.ZipFile(wheel) as zf:
        meta_name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1)
        meta = zf.read(meta_name).decode("utf-8", "replace")
    out = []
    for line in meta.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        req = Requirement(line.split(":", 1)[1].strip())
        if req.marker is None or req.marker.evaluate({**env, "extra": ""}):
            out.append(req)
    return out


def _wheel_version(wheel: Path) -> str:
    return wheel.name.split("-")[1]


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _dist_name(wheel: Path) -> str:
    return wheel.name.split("-")[0].lower().replace("_", "-").replace(".", "-")


def stage(staging: Path, wheels: list[Path], platform: str | None) -> Path:
    """A copy of the add-on's files with the wheels and a manifest that lists them."""
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    data = manifest()
    paths = list(data.get("build", {}).get("paths", []))
    extra = [p for p in ("LICENSE", "README.md") if (REPO / p).is_file() and p not in paths]
    for rel in paths + extra:
        src = REPO / rel
        if not src.exists():
            raise BuildError(f"blender_manifest.toml [build] paths names {rel}, which does not exist")
        dst = staging / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, dst)
    (staging / "wheels").mkdir()
    for w in wheels:
        shutil.copy2(w, staging / "wheels" / w.name)
    text = (REPO / "blender_manifest.toml").read_text()
    if extra:
        text = re.sub(r"(paths = \[\n)", lambda m: m.group(1) + "".join(f'    "{e}",\n' for e in extra), text, count=1)
    top = []
    if wheels:
        top.append("wheels = [\n" + "".join(f'    "./wheels/{w.name}",\n' for w in wheels) + "]")
    if platform:
        top.append(f'platforms = ["{platform}"]')
    if top:
        first_table = re.search(r"^\[", text, flags=re.M)
        at = first_table.start() if first_table else len(text)
        text = text[:at] + "\n".join(top) + "\n\n" + text[at:]
    (staging / "blender_manifest.toml").write_text(text)
    return staging


def blender_ext_script() -> Path:
    """Blender's extension CLI (``blender_ext.py``) as shipped inside the bpy wheel."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise BuildError("bpy is not installed here: pip install bpy==5.0.1, or pass --blender /path/to/blender")
    root = Path(list(spec.submodule_search_locations)[0])
    found = sorted(root.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not found:
        raise BuildError(f"no bl_pkg/cli/blender_ext.py under {root}; pass --blender /path/to/blender")
    return found[-1]


def blender_command(blender: str | None, args: list[str]) -> list[str]:
    if blender:
        return [blender, "--factory-startup", "--command", "extension", *args]
    return [sys.executable, str(blender_ext_script()), *args]


def build_zip(staging: Path, out_zip: Path, blender: str | None) -> Path:
    """Blender's builder, then its validator on the zip."""
    out_zip.parent.mkdir(parents=True, exist_ok=True)
    if out_zip.exists():
        out_zip.unlink()
    run(blender_command(blender, ["build", "--source-dir", str(staging), "--output-filepath", str(out_zip)]))
    run(blender_command(blender, ["validate", str(out_zip)]))
    return out_zip


def zip_name(platform: str | None, wheel_set: str) -> str:
    data = manifest()
    base = f"{data['id']}-{data['version']}"
    if platform:
        base += "-" + platform.replace("-", "_")
    if wheel_set != "all":
        base += f"-{wheel_set}"
    return base + ".zip"


def build(
    output: Path,
    platforms: list[str],
    wheel_set: str = "all",
    torch_spec: str = DEFAULT_TORCH,
    index_args: list[str] | None = None,
    blender: str | None = None,
) -> list[Path]:
    """Build and validate one zip per platform (or one platform-free zip for ``--wheels none``)."""
    output = Path(output).resolve()
    output.mkdir(parents=True, exist_ok=True)
    made: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="kinest-build-") as tmp:
        work = Path(tmp)
        if wheel_set == "none":
            staging = stage(work / "staging", [], None)
            made.append(build_zip(staging, output / zip_name(None, wheel_set), blender))
            return made
        core = build_core_wheel(work / "core")
        for name in platforms:
            plat = PLATFORMS[name]
            t0 = time.perf_counter()
            wheels = download_wheels(core, plat, work / "wheels" / name, wheel_set, torch_spec, index_args or [])
            staging = stage(work / "staging" / name, wheels, plat.blender)
            zp = build_zip(staging, output / zip_name(plat.blender, wheel_set), blender)
            log(f"{zp.name}: {zp.stat().st_size / 1e6:.1f} MB, {len(wheels)} wheels, {time.perf_counter() - t0:.0f} s")
            made.append(zp)
    return made


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kinest_blender.build", description=__doc__.split("\n\n")[0])
    ap.add_argument("--output", required=True, type=Path, help="folder for the zips")
    ap.add_argument(
        "--platform",
        action="append",
        choices=sorted(PLATFORMS),
        help="platform to build (repeat for several; default: all three)",
    )
    ap.add_argument(
        "--wheels",
        choices=WHEEL_SETS,
        default="all",
        help="all: core + CPU torch + dependencies (the release); no-torch: without torch; core: only "
        "the kinest_core wheel; none: the add-on alone (for development where Blender's Python has them)",
    )
    ap.add_argument("--torch", default=DEFAULT_TORCH, help=f"torch requirement (default {DEFAULT_TORCH})")
    ap.add_argument("--index-url", help=f"package index for pip download (e.g. {CPU_INDEX_HINT} for Linux CPU torch)")
    ap.add_argument("--extra-index-url", action="append", default=[], help="extra package index (repeatable)")
    ap.add_argument("--find-links", action="append", default=[], help="folder or page with wheels (repeatable)")
    ap.add_argument("--blender", help="Blender executable for 'blender --command extension build/validate'")
    ap.add_argument("--json", action="store_true", help="print the zips and their sizes as JSON")
    args = ap.parse_args(argv)
    index_args: list[str] = []
    if args.index_url:
        index_args += ["--index-url", args.index_url]
    for url in args.extra_index_url:
        index_args += ["--extra-index-url", url]
    for link in args.find_links:
        index_args += ["--find-links", link]
    try:
        zips = build(args.output, args.platform or list(PLATFORMS), args.wheels, args.torch, index_args, args.blender)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({z.name: z.stat().st_size for z in zips}, indent=2))
    else:
        for z in zips:
            print(f"{z}  {z.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
