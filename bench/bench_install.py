"""Install weight: site-packages size and install time of `pip install .` (plain, and with [local]) in fresh venvs.

    python bench/bench_install.py [--extras "" local] [--project DIR] [--keep]

Each variant gets a new venv in a temporary directory and a non-editable install of this checkout; the figures
are the venv's site-packages size in MB (pip and setuptools, which every venv has, left out) and the wall time
of the `pip install` alone. pip's cache is used as it is (a CI runner's pip cache does the same); nothing else.
``--project`` measures another checkout (an older commit, for comparison) the same way.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ("pip", "setuptools", "_distutils_hack", "distutils-precedence.pth", "pkg_resources")


def _site_packages(env: Path) -> Path:
    return next((env / "lib").glob("python3*/site-packages"))


def _size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6


def _project_size(site: Path) -> tuple[float, dict[str, float]]:
    """The installed packages' size, without what a bare venv already holds; the five largest top-level entries."""
    sizes: dict[str, float] = {}
    for entry in site.iterdir():
        if entry.name.startswith(BASELINE) or entry.name == "__pycache__":
            continue
        sizes[entry.name] = _size_mb(entry) if entry.is_dir() else entry.stat().st_size / 1e6
    return sum(sizes.values()), dict(sorted(sizes.items(), key=lambda kv: -kv[1])[:5])


def measure(project: Path, extras: str, workdir: Path) -> tuple[float, float, dict[str, float], list[str]]:
    env = workdir / f"venv-{extras or 'plain'}"
    venv.EnvBuilder(with_pip=True).create(env)
    python = env / "bin" / "python"
    target = f"{project}[{extras}]" if extras else str(project)
    started = time.perf_counter()
    installed = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", target],
                               capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if installed.returncode != 0:
        raise SystemExit(f"pip install {target} failed:\n{installed.stderr}")
    size, largest = _project_size(_site_packages(env))
    frozen = subprocess.run([str(python), "-m", "pip", "freeze", "--disable-pip-version-check"], check=True,
                            capture_output=True, text=True).stdout.split()
    return size, seconds, largest, [line.split("==")[0].lower() for line in frozen]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extras", nargs="*", default=["", "local"],
                        help='extras to measure ("" is the plain install)')
    parser.add_argument("--project", type=Path, default=ROOT, help="the checkout to install (default: this one)")
    parser.add_argument("--keep", action="store_true", help="keep the venvs and print where they are")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="deploypipe-install-"))
    try:
        for extras in args.extras:
            size, seconds, largest, packages = measure(args.project.resolve(), extras, workdir)
            name = f"pip install .[{extras}]" if extras else "pip install ."
            heavy = [p for p in ("numpy", "scipy", "starlette", "uvicorn") if p in packages]
            print(f"{name}: {size:.0f} MB of site-packages, {seconds:.1f} s, {len(packages)} packages; "
                  f"numpy/scipy/starlette/uvicorn: {', '.join(heavy) or 'none'}")
            print("  largest: " + ", ".join(f"{k} {v:.0f} MB" for k, v in largest.items()))
    finally:
        if args.keep:
            print(f"venvs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
