#!/usr/bin/env bash
# `pip install .` from the checkout as a user runs it, offline: the in-tree backend (scripts/pip_backend) builds the
# module with CMake into a wheel, pip installs it into a directory, and Debian's python3 imports it from there and
# rounds with it. The build directory given is reused (only the module target is brought up to date).
# Usage: pip_install.sh SOURCE_DIR BUILD_DIR WORK_DIR
set -euo pipefail
src=$1 build=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
/usr/bin/python3 -m pip install --quiet --no-deps --no-index --no-cache-dir --target "$work/site" \
  --config-settings "build-dir=$build" "$src"
ls "$work"/site/lpsim-*.dist-info/METADATA > /dev/null
cd "$work" && PYTHONPATH="$work/site" /usr/bin/python3 - <<'PY'
import numpy as np
import lpsim
assert lpsim.__file__.startswith(__import__("os").environ["PYTHONPATH"]), lpsim.__file__
x = np.array([0.1, 1 / 3, 65504.0 * 2], dtype=np.float32)
y = lpsim.round(x, "fp16")
assert y.dtype == np.float32 and y[0] == np.float32(np.float16(0.1)) and y[1] == np.float32(np.float16(1 / 3)), y
assert np.isinf(y[2]), y
print("pip-installed lpsim", lpsim.__version__, "from", lpsim.__file__)
PY
