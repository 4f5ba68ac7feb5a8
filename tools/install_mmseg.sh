#!/usr/bin/env bash
# Install MMSegmentation 1.2.2 with mmcv 2.1.0 (built from its sdist, CPU ops) into a venv.
#
#   bash tools/install_mmseg.sh .venv/bin/python
#
# Why a build: mmseg 1.2.2 asserts mmcv < 2.2.0, some of its heads import mmcv.ops (mmcv-lite has
# none), and PyPI has mmcv 2.1.0 only as an sdist that does not build against current tools:
#   - its setup.py imports pkg_resources (gone from setuptools >= 84): replaced by importlib.metadata
#     and packaging here (the target venv's setuptools is left as it is);
#   - it forces -std=c++17, and torch >= 2.10 headers require C++20: patched to -std=c++20.
# The wheel is cached in .whl/ of this clone (git-ignored), keyed by the mmcv, torch and Python
# versions; a second run only installs. mmcv is built with its CPU ops only (the GPU is hidden
# during the build), without debug info. Nothing is cached outside the clone (pip runs with
# --no-cache-dir). mmengine is installed without its `opencv-python` requirement: the venv's
# opencv-python-headless already provides cv2 (two cv2 distributions overwrite each other).
set -euo pipefail

MMCV_VERSION=2.1.0
MMCV_SHA256=d387bcab66b467479b6660310e23746cfc79c6e57acf04094680adb499a5cd3f
MMSEG_VERSION=1.2.2
MMENGINE_VERSION=0.10.7

# Run without an argument inside a conda env (as envs/mmseg.post-deploy.sh, a link to this file,
# is run by Snakemake), it installs into that env, caching the wheel beside the env's files.
if [[ $# -eq 0 && -n ${CONDA_PREFIX:-} ]]; then
	set -- "$CONDA_PREFIX/bin/python"
fi
# --offline DIR: no index at all, for a machine without internet (bench/device_mmseg.sh): the mmcv
# sdist (its hash checked) and every wheel missing on the machine come from DIR.
OFFLINE=
if [[ $# -eq 3 && $2 == --offline ]]; then
	OFFLINE=$(cd "$3" && pwd)
	set -- "$1"
fi
if [[ $# -ne 1 ]]; then
	echo "usage: bash tools/install_mmseg.sh PYTHON [--offline DIR]   (the python of the venv to install into)" >&2
	exit 2
fi
PY=$(command -v "$1") || {
	echo "install_mmseg.sh: no python at $1" >&2
	exit 2
}
PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PIP=("$PY" -m pip --disable-pip-version-check)
INDEX=() # where `pip install` finds packages: PyPI, or only the --offline folder
if [[ -n $OFFLINE ]]; then
	INDEX=(--no-index --find-links "$OFFLINE")
fi
VERIFY='import mmseg, mmcv, mmengine, mmseg.models; from mmcv.ops import point_sample
print("mmseg", mmseg.__version__, "mmcv", mmcv.__version__, "mmengine", mmengine.__version__)'

if "$PY" -c "$VERIFY" 2>/dev/null; then
	echo "install_mmseg.sh: already installed in $PY"
	exit 0
fi

"$PY" -c 'import torch' || {
	echo "install_mmseg.sh: torch is not importable in $PY: install the project first (pip install -e .)" >&2
	exit 1
}
TAG=$("$PY" -c 'import sys, torch; print(f"torch{torch.__version__}-cp{sys.version_info[0]}{sys.version_info[1]}-cpu")')
CACHE=$ROOT/.whl/mmcv-$MMCV_VERSION-$TAG
shopt -s nullglob
wheels=("$CACHE"/mmcv-"$MMCV_VERSION"-*.whl)

if [[ ${#wheels[@]} -eq 0 ]]; then
	mkdir -p "$ROOT/.whl"
	WORK=$(mktemp -d "$ROOT/.whl/build.XXXXXX")
	trap 'rm -rf "$WORK"' EXIT
	echo "install_mmseg.sh: building mmcv $MMCV_VERSION for $TAG in $WORK (about 6-9 minutes on 2 cores)"
	start=$SECONDS
	# pip prepares the sdist's metadata even for `download`, which runs setup.py in an isolated
	# env: give that env a setuptools that still has pkg_resources (this step only).
	echo "setuptools<70" >"$WORK/build-constraints.txt"
	echo "mmcv==$MMCV_VERSION --hash=sha256:$MMCV_SHA256" >"$WORK/mmcv.txt"
	if [[ -n $OFFLINE ]]; then
		cp "$OFFLINE/mmcv-$MMCV_VERSION.tar.gz" "$WORK/"
		echo "$MMCV_SHA256  $WORK/mmcv-$MMCV_VERSION.tar.gz" | sha256sum --check --quiet
	else
		PIP_CONSTRAINT="$WORK/build-constraints.txt" "${PIP[@]}" download --quiet --no-cache-dir \
			--no-deps --no-binary :all: --require-hashes -r "$WORK/mmcv.txt" -d "$WORK"
	fi
	tar -xzf "$WORK/mmcv-$MMCV_VERSION.tar.gz" -C "$WORK"
	SRC=$WORK/mmcv-$MMCV_VERSION
	"$PY" - "$SRC/setup.py" <<'EOF'
import sys

path = sys.argv[1]
text = open(path).read()
patches = [
    (
        "from pkg_resources import DistributionNotFound, get_distribution, parse_version\n",
        "from importlib.metadata import PackageNotFoundError as DistributionNotFound\n"
        "from importlib.metadata import distribution as get_distribution\n"
        "from packaging.version import parse as parse_version\n",
    ),
    (
        "                extra_compile_args['cxx'] = ['-std=c++17']\n",
        "                extra_compile_args['cxx'] = ['-std=c++20']\n",
    ),
]
for old, new in patches:
    if text.count(old) != 1:
        sys.exit(f"install_mmseg.sh: {path} changed, cannot patch: {old.strip()!r}")
    text = text.replace(old, new)
open(path, "w").write(text)
EOF
	# Ninja runs the compiles in parallel (without it setuptools compiles one file at a time).
	VENV_BIN=$(dirname "$PY")
	if ! PATH="$VENV_BIN:$PATH" command -v ninja >/dev/null; then
		"${PIP[@]}" install ${INDEX[@]+"${INDEX[@]}"} --quiet --no-cache-dir ninja
	fi
	# CUDA_VISIBLE_DEVICES="": mmcv's setup.py builds CUDA ops whenever torch sees a GPU.
	# CFLAGS=-g0 drops Python's default -g (debug info): a smaller wheel and a faster build.
	(cd "$SRC" && PATH="$VENV_BIN:$PATH" CUDA_VISIBLE_DEVICES="" FORCE_CUDA=0 MMCV_WITH_OPS=1 \
		MAX_JOBS="${MAX_JOBS:-$(nproc)}" CFLAGS="-g0" \
		"${PIP[@]}" wheel --no-build-isolation --no-deps --no-cache-dir -w "$WORK/dist" . \
		>"$WORK/build.log" 2>&1) || {
		tail -n 60 "$WORK/build.log" >&2
		echo "install_mmseg.sh: the mmcv build failed (log above; a C++ compiler, g++ >= 10, is needed)" >&2
		exit 1
	}
	built=("$WORK"/dist/mmcv-"$MMCV_VERSION"-*.whl)
	mkdir -p "$CACHE"
	mv "${built[0]}" "$CACHE/"
	wheels=("$CACHE"/mmcv-"$MMCV_VERSION"-*.whl)
	echo "install_mmseg.sh: built $(basename "${wheels[0]}") ($(du -h "${wheels[0]}" | cut -f1)) in $((SECONDS - start)) s"
fi

# --no-deps for mmcv and mmengine, then their requirements by hand: mmengine asks for opencv-python,
# which would overwrite the venv's opencv-python-headless (cv2 either way).
"${PIP[@]}" install ${INDEX[@]+"${INDEX[@]}"} --no-cache-dir --no-deps "${wheels[0]}" "mmengine==$MMENGINE_VERSION"
CV2=()
"$PY" -c 'import cv2' 2>/dev/null || CV2=("opencv-python-headless>=4.8")
"${PIP[@]}" install ${INDEX[@]+"${INDEX[@]}"} --no-cache-dir "mmsegmentation==$MMSEG_VERSION" addict packaging pillow pyyaml \
	rich termcolor yapf matplotlib numpy scipy prettytable ftfy regex "${CV2[@]}"
"$PY" -c "$VERIFY"
