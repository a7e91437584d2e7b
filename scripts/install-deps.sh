#!/usr/bin/env bash
# Install what Axle needs to build, test and benchmark on Debian 12.
# The CUDA toolkit is optional (the CUDA backend is built when its headers are found).
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  build-essential cmake pkg-config git ca-certificates \
  ocl-icd-libopencl1 ocl-icd-opencl-dev opencl-headers pocl-opencl-icd clinfo \
  libspdlog-dev libfmt-dev libgtest-dev libtomlplusplus-dev nlohmann-json3-dev \
  libclblast-dev libopenblas-dev libdnnl-dev \
  clang libclang-rt-dev llvm \
  python3 python3-matplotlib >/dev/null
echo "dependencies installed"
