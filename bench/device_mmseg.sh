#!/usr/bin/env bash
# MMSegmentation on the device machine (no internet; torch, opencv, matplotlib and scipy already
# there): mmcv 2.1.0 built from its sdist with its CPU ops and mmseg 1.2.2 installed, all from a
# folder of carried files, by tools/install_mmseg.sh --offline.
#
#   bash bench/device_mmseg.sh .whl/mm [PYTHON]
#
# The folder (prepared on a machine with internet, cp312; ~4.4 MB):
#   pip download --python-version 3.12 --only-binary=:all: --no-deps -d DIR addict==2.4.0 \
#     ftfy==6.3.1 wcwidth==0.9.4 yapf==0.43.0 platformdirs==4.14.9 termcolor==3.3.0 \
#     prettytable==3.18.0 mmengine==0.10.7 mmsegmentation==1.2.2
#   the mmcv 2.1.0 sdist: tools/install_mmseg.sh's `pip download --no-binary :all:` line, -d DIR
# CPU ops are enough for the bench's models (Swin / SegFormer backbones and UPerNet / SegFormer
# heads run no mmcv op at inference); MAX_JOBS defaults to the machine's cores.
set -euo pipefail
if [[ $# -lt 1 || ! -d $1 ]]; then
	echo "usage: bash bench/device_mmseg.sh DIR [PYTHON]   (DIR: the carried mmcv sdist and wheels)" >&2
	exit 2
fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
start=$SECONDS
# The device's python is the image's own: let pip install into it.
PIP_BREAK_SYSTEM_PACKAGES=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
	bash "$ROOT/tools/install_mmseg.sh" "${2:-python3}" --offline "$1"
echo "device_mmseg.sh: mmseg ready in $((SECONDS - start)) s"
