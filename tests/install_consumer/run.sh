#!/usr/bin/env bash
# Install the build into a temporary prefix, build the consumer against it with
# find_package(axle CONFIG) and run it.  Usage: run.sh <build-dir> <source-dir>
set -euo pipefail
build=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
cmake -S "$src" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$work/consumer" -j2 >/dev/null
LD_LIBRARY_PATH="$work/prefix/lib:${LD_LIBRARY_PATH:-}" "$work/consumer/consumer"
# pkg-config sees the package too
PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig" pkg-config --modversion axle
