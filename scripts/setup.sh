#!/usr/bin/env bash
# Installs what lpsim needs from Debian 12 (only what is missing) and builds it in ./build.
# Used by both README commands and by .ci/run:
#   bash scripts/setup.sh          everything (the command line, tests, benchmarks, Python module, CUDA)
#   bash scripts/setup.sh lpsim    only the named targets (the README's main job needs the lpsim binary alone)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(cmake make g++ pkg-config libmpfr-dev libgmp-dev libqd-dev libboost-dev libeigen3-dev libgtest-dev libbenchmark-dev
          libcli11-dev libfmt-dev nlohmann-json3-dev libtomlplusplus-dev python3 python3-dev python3-pip pybind11-dev python3-pytest python3-matplotlib python3-numpy
          python3-torch python3-sklearn
          libopenmpi-dev openmpi-bin)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# nvcc is optional: the CUDA path is built when it is found (Debian's nvidia-cuda-toolkit or /usr/local/cuda).
export PATH="$PATH:/usr/local/cuda/bin"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
if (($#)); then
  cmake --build build -j"$(nproc)" --target "$@"
else
  cmake --build build -j"$(nproc)"
fi
