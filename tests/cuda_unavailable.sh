#!/usr/bin/env bash
# Where CUDA cannot serve, AXLE_DEVICE=cuda:0 on a sample must exit non-zero with
# a message saying why. Skipped (77) where a CUDA device is present.
# Usage: cuda_unavailable.sh <axle-tool> <vector_add>
set -u
axle=$1
sample=$2
if "$axle" query --json | grep -q '"name":"cuda","available":true'; then
  echo "a CUDA device is present: nothing to check"
  exit 77
fi
out=$(AXLE_DEVICE=cuda:0 "$sample" 1000 2>&1)
rc=$?
echo "$out"
if [ $rc -eq 0 ]; then
  echo "FAIL: AXLE_DEVICE=cuda:0 succeeded on a machine where CUDA cannot serve"
  exit 1
fi
if ! echo "$out" | grep -q "AXLE_DEVICE=cuda:0 cannot serve"; then
  echo "FAIL: the message does not say that cuda:0 cannot serve"
  exit 1
fi
if ! echo "$out" | grep -Eq "cuda.*(unavailable|not compiled)"; then
  echo "FAIL: the message does not say why CUDA is unavailable"
  exit 1
fi
echo "OK: exit code $rc with the reason"
