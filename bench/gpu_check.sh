#!/usr/bin/env bash
# gpu_check.sh: check a build on a machine with an NVIDIA GPU, in under 8 minutes.
#
#   bench/gpu_check.sh --prepare [BUILD]   on the build machine: copy the shared libraries
#                                          the binaries need (spdlog, fmt, toml++, the
#                                          OpenCL ICD loader, libstdc++, oneDNN ...) into
#                                          BUILD/deps, and make a slim copy BUILD-gpu to
#                                          carry (the largest libraries gzipped)
#   bench/gpu_check.sh [BUILD]             on the GPU machine (default BUILD: build)
#
# BUILD is a build folder made by CMake on the build machine (configure it with
# -DAXLE_BUILD_BENCH=ON to get the benchmarks). Phases, each run even if the one before
# failed, each under its own time limit:
#   env        nvidia-smi, the libraries found, axle query
#   ctest-cuda the whole ctest suite with AXLE_DEVICE=cuda:0, then the tensor-core GEMM
#              paths pinned one by one and the convolution suite (axle_conv_tests) on its own
#   samples    every sample with AXLE_DEVICE=cuda:0
#   ctest-ocl  the ctest suite again with AXLE_DEVICE=opencl:gpu (when NVIDIA's OpenCL ICD is present)
#   bench      launch_cuda_bench and the other benchmarks in BUILD/bench (with --quick when they take it),
#              GEMM at the goal sizes, conv_bench on the 3x3 layers at batch 32 (f16 and f32, cuDNN
#              in the same process) and both backward directions of a 3x3 and a 1x1 layer
#              at batch 8 (f32)
# Then a summary (pass/fail per phase). With $OUT set, logs and JSON go there
# (at most 12 files: gpu_check.log, ctest_cuda.log, ctest_opencl_gpu.log, samples.log,
# bench.log, launch_cuda_bench.json, gemm_f32.json, gemm_bf16.json, conv_f16.json,
# conv_f32.json, conv_bwd.json, summary.json).
#
# The build's absolute paths (CTest files, test data) are those of the build machine; when
# they do not exist here the script links the original source folder to this checkout.
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
prepare=0
build=""
for a in "$@"; do
  case "$a" in
    --prepare) prepare=1 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) build=$a ;;
  esac
done
[ -n "$build" ] || build=build
case "$build" in /*) ;; *) build="$root/$build" ;; esac
if [ ! -f "$build/CMakeCache.txt" ]; then
  echo "gpu_check: $build is not a CMake build folder" >&2
  exit 2
fi

# ------------------------------------------------------------------ --prepare
if [ $prepare -eq 1 ]; then
  deps="$build/deps"
  mkdir -p "$deps"
  # Every ELF file of the build (executables and shared libraries), minus object files.
  mapfile -t elfs < <(find "$build" -path "$deps" -prune -o -type f \( -perm -u+x -o -name '*.so*' \) -print |
                      while read -r f; do head -c4 "$f" 2>/dev/null | grep -q 'ELF' && echo "$f"; done)
  skip='^(linux-vdso|ld-linux|libc\.so|libm\.so|libpthread|libdl\.so|librt\.so|libresolv|libcuda\.so|libnvrtc|libaxle_|libcublas|libcudart|libcudnn)'
  declare -A seen=()
  for f in "${elfs[@]}"; do
    while read -r name _ path _; do
      [ -n "${path:-}" ] && [ -f "$path" ] || continue
      [[ "$name" =~ $skip ]] && continue
      seen["$path"]=1
    done < <(ldd "$f" 2>/dev/null | grep '=>')
  done
  # The OpenCL ICD loader is opened at run time, so ldd does not show it.
  ocl=$(ldconfig -p | awk '/libOpenCL\.so\.1 .*x86-64/ {print $NF; exit}')
  [ -n "$ocl" ] && seen["$ocl"]=1
  # Libraries every system has a (usually newer) copy of go to deps/fallback, used on
  # the GPU machine only when it lacks them: an older libstdc++ first on the path would
  # shadow the newer one that the driver's libraries need.
  mkdir -p "$deps/fallback"
  for p in "${!seen[@]}"; do
    case "$(basename "$p")" in
      libstdc++.so*|libgcc_s.so*|libOpenCL.so*) cp -L "$p" "$deps/fallback/$(basename "$p")" ;;
      *) cp -L "$p" "$deps/$(basename "$p")" ;;
    esac
  done
  echo "gpu_check --prepare: copied ${#seen[@]} libraries into $deps:"
  ls -la "$deps"
  # A slim copy to carry (the device tool carries at most 64 MiB): no object files.
  slim="${build%/}-gpu"
  rm -rf "$slim"
  mkdir -p "$slim"
  (cd "$build" && find . \( -type f -o -type l \) ! -name '*.o' ! -name '*.a' ! -name '*.d' ! -path './kernel_cache/*' \
     ! -path './tests/kernel_cache/*' -print0 | tar --null -T - -cf - | tar -xf - -C "$slim")
  # Large libraries (oneDNN, OpenBLAS) travel gzipped; the run unpacks them.
  find "$slim/deps" -maxdepth 2 -type f -name '*.so*' ! -name '*.gz' -size +8M -exec gzip -6 {} \;
  du -sh "$slim" | awk '{print "carry this folder (no object files): " $2 " (" $1 ")"}'
  echo "on the GPU machine run: bench/gpu_check.sh ${slim#$root/}"
  echo "(libcublas/libcudart come from the GPU machine's CUDA toolkit)"
  exit 0
fi

# ------------------------------------------------------------------ setup
t_start=$(date +%s)
deadline=$((t_start + 480))   # leave margin under 9 minutes
out="${OUT:-}"
logdir=${out:-$(mktemp -d /tmp/axle_gpu_check.XXXXXX)}
mkdir -p "$logdir"
mainlog="$logdir/gpu_check.log"
: > "$mainlog"
say() { echo "$@" | tee -a "$mainlog"; }
left() { local l=$((deadline - $(date +%s))); [ $l -lt 5 ] && l=5; echo $l; }
limit() { local want=$1 l; l=$(left); [ "$want" -lt "$l" ] && echo "$want" || echo "$l"; }

declare -A pass=() fail=() note=()
phases=(env ctest-cuda samples ctest-ocl bench)
for p in "${phases[@]}"; do pass[$p]=0; fail[$p]=0; note[$p]=""; done

# Original absolute paths of the build machine.
src_orig=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$build/CMakeCache.txt")
bin_orig=$(sed -n 's/^CMAKE_CACHEFILE_DIR:INTERNAL=//p' "$build/CMakeCache.txt")
if [ -n "$src_orig" ] && [ ! -e "$src_orig" ]; then
  mkdir -p "$(dirname "$src_orig")" 2>/dev/null && ln -s "$root" "$src_orig" 2>/dev/null &&
    say "linked $src_orig -> $root (the build's source path)"
fi
if [ -n "$bin_orig" ] && [ ! -e "$bin_orig" ]; then
  mkdir -p "$(dirname "$bin_orig")" 2>/dev/null && ln -s "$build" "$bin_orig" 2>/dev/null &&
    say "linked $bin_orig -> $build (the build's binary path)"
fi

# Libraries --prepare gzipped for the trip.
for z in "$build"/deps/*.gz "$build"/deps/fallback/*.gz; do
  [ -f "$z" ] || continue
  [ -e "${z%.gz}" ] || gzip -dc "$z" > "${z%.gz}" || say "cannot unpack $z"
done
ldp="$build/deps:$build/runtime:$build/kernels"
for lib in libstdc++.so.6 libgcc_s.so.1 libOpenCL.so.1; do
  if ! ldconfig -p | grep -q "$lib " && [ -e "$build/deps/fallback/$lib" ]; then
    mkdir -p "$build/deps/use"
    ln -sf "$build/deps/fallback/$lib" "$build/deps/use/$lib"
  fi
done
[ -d "$build/deps/use" ] && ldp="$ldp:$build/deps/use"
# cuBLAS and cuDNN (benchmark peers) from the machine's toolkit.
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -e "$d/libcublas.so.13" ] && { ldp="$ldp:$d"; break; }
done
if ! ldconfig -p | grep -q 'libcudnn.so.9 '; then
  for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib; do
    [ -e "$d/libcudnn.so.9" ] && { ldp="$ldp:$d"; break; }
  done
fi
for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu; do
  [ -e "$d/libcuda.so.1" ] && ldp="$ldp:$d"
done
# NVRTC: the backend searches the loader path, $CUDA_PATH/lib64, $CUDA_HOME/lib64,
# /usr/local/cuda*/lib64; add a pip-installed copy to the loader path when that is all there is.
if ! ls /usr/local/cuda*/lib64/libnvrtc.so.1[23]* >/dev/null 2>&1 && ! ldconfig -p | grep -q 'libnvrtc.so.1[23]'; then
  nv=$(timeout 20 find / -xdev \( -name 'libnvrtc.so.13' -o -name 'libnvrtc.so.12' \) 2>/dev/null | head -1)
  [ -n "$nv" ] && ldp="$ldp:$(dirname "$nv")"
fi
export LD_LIBRARY_PATH="$ldp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export AXLE_CACHE_DIR="${AXLE_CACHE_DIR:-$(mktemp -d /tmp/axle_cache.XXXXXX)}"

run_phase_cmd() {  # run_phase_cmd <seconds> <log> cmd...: run with a time limit, log it
  local secs=$1 log=$2
  shift 2
  echo "+ $* (limit ${secs}s)" >> "$log"
  timeout --kill-after=10 "$secs" "$@" >> "$log" 2>&1
}

# Count ctest results from its log into the phase.
count_ctest() {  # count_ctest <phase> <log> <rc>
  local ph=$1 log=$2 rc=$3 line tot failed
  # "100% tests passed out of 100" or "95% tests passed, 5 tests failed out of 100"
  line=$(grep -E 'tests passed(, [0-9]+ tests failed)? out of [0-9]+' "$log" | tail -1)
  if [ -n "$line" ]; then
    tot=$(echo "$line" | sed -E 's/.* out of ([0-9]+).*/\1/')
    failed=0
    echo "$line" | grep -q 'tests failed' && failed=$(echo "$line" | sed -E 's/.* ([0-9]+) tests failed out of.*/\1/')
    pass[$ph]=$((tot - failed))
    fail[$ph]=$failed
    grep -E '^\s+[0-9]+ - .*\((Failed|Timeout|SEGFAULT|Subprocess aborted|Not Run|Exception)' "$log" >> "$mainlog"
  else
    fail[$ph]=1
    note[$ph]="ctest did not finish (rc $rc)"
  fi
  local skipped per_dev
  skipped=$(grep -c '\*\*\*Skipped\|Disabled' "$log")
  [ "$skipped" -gt 0 ] && note[$ph]="${note[$ph]} ${skipped} skipped"
  # Per-device cases are listed at test time (DISCOVERY_MODE PRE_TEST): count those that
  # ran on each device.
  for per_dev in cuda_0 opencl_0 opencl_1; do
    local n_dev
    n_dev=$(grep -E "Test +#[0-9]+: [^ ]*/${per_dev} .*Passed" "$log" | wc -l)
    [ "$n_dev" -gt 0 ] && note[$ph]="${note[$ph]} ${n_dev} passed on ${per_dev}"
  done
}

# ------------------------------------------------------------------ env
say "== env ($(date -u +%FT%TZ)) build=$build"
if command -v nvidia-smi >/dev/null; then
  timeout 20 nvidia-smi 2>&1 | tee -a "$mainlog"
else
  say "nvidia-smi not found"
fi
say "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
axle_tool=$(find "$build" -path "$build/deps" -prune -o -type f -name axle -perm -u+x -print | head -1)
if [ -n "$axle_tool" ]; then
  if timeout 60 "$axle_tool" query 2>&1 | tee -a "$mainlog"; then pass[env]=1; else fail[env]=1; fi
  if grep -q 'GLIBC_\|GLIBCXX_\|error while loading shared libraries' "$mainlog"; then
    note[env]="binaries do not start here (system libraries differ): run --prepare on the build machine, or build here"
  fi
else
  say "no axle tool in $build"
  fail[env]=1
fi

# ------------------------------------------------------------------ ctest
ctest_bin=$(command -v ctest || true)
run_ctest() {  # run_ctest <phase> <device> <log> <seconds>
  local ph=$1 dev=$2 log=$3 secs=$4 rc
  : > "$log"
  if [ -n "$ctest_bin" ]; then
    AXLE_TEST_EXPECT_DEVICES=cuda AXLE_DEVICE=$dev run_phase_cmd "$secs" "$log" "$ctest_bin" --test-dir "$build" --output-on-failure \
      --timeout 200 -j 4
    rc=$?
    count_ctest "$ph" "$log" "$rc"
  else  # no ctest: run the test executables directly
    for t in "$build"/tests/axle_*tests; do
      [ -x "$t" ] || continue
      if AXLE_DEVICE=$dev run_phase_cmd "$(limit 150)" "$log" "$t"; then
        pass[$ph]=$((pass[$ph] + 1))
      else
        fail[$ph]=$((fail[$ph] + 1))
        say "FAILED: $t"
      fi
    done
    note[$ph]="ctest not found: ran tests/axle_*tests directly"
  fi
}

say "== ctest-cuda (AXLE_DEVICE=cuda:0)"
run_ctest ctest-cuda cuda:0 "$logdir/ctest_cuda.log" "$(limit 210)"
tail -n 25 "$logdir/ctest_cuda.log" | tee -a "$mainlog"

# Tensor-core GEMM paths pinned one by one (auto mode self-checks wgmma against mma.sync
# and falls back, which would hide a wgmma bug).
tc_tests="$build/tests/axle_gemm_tensorcore_tests"
if [ -x "$tc_tests" ]; then
  for mode in mma wgmma1 wgmma2; do
    if AXLE_GEMM_TC=$mode AXLE_DEVICE=cuda:0 run_phase_cmd "$(limit 90)" "$logdir/ctest_cuda.log" "$tc_tests"; then
      say "  ok    axle_gemm_tensorcore_tests with AXLE_GEMM_TC=$mode"
    else
      say "  FAIL  axle_gemm_tensorcore_tests with AXLE_GEMM_TC=$mode"
      grep -E '^\[  FAILED|Failure|disagrees' "$logdir/ctest_cuda.log" | tail -n 12 | tee -a "$mainlog"
    fi
  done
fi

# The convolution suite on its own (its result stays visible when the whole suite
# runs out of time).
conv_tests="$build/tests/axle_conv_tests"
if [ -x "$conv_tests" ]; then
  if AXLE_DEVICE=cuda:0 run_phase_cmd "$(limit 120)" "$logdir/ctest_cuda.log" "$conv_tests"; then
    say "  ok    axle_conv_tests on cuda:0"
  else
    say "  FAIL  axle_conv_tests on cuda:0"
    note[ctest-cuda]="${note[ctest-cuda]} axle_conv_tests failed"
    grep -E '^\[  FAILED|Failure' "$logdir/ctest_cuda.log" | tail -n 12 | tee -a "$mainlog"
  fi
fi

# ------------------------------------------------------------------ samples
say "== samples (AXLE_DEVICE=cuda:0)"
slog="$logdir/samples.log"
: > "$slog"
for s in "$build"/bin/*; do
  [ -f "$s" ] && [ -x "$s" ] || continue
  name=$(basename "$s")
  [ "$name" = axle ] && continue
  args=()
  case "$name" in
    vector_add) args=(100003) ;;
    custom_kernel) args=("$root/samples/kernels/saxpy.cl" saxpy) ;;
  esac
  if AXLE_DEVICE=cuda:0 run_phase_cmd "$(limit 40)" "$slog" "$s" "${args[@]}"; then
    pass[samples]=$((pass[samples] + 1)); say "  ok    $name"
  else
    fail[samples]=$((fail[samples] + 1)); say "  FAIL  $name (see samples.log)"
  fi
done

# ------------------------------------------------------------------ ctest on NVIDIA OpenCL
say "== ctest-ocl (AXLE_DEVICE=opencl:gpu)"
if ls /etc/OpenCL/vendors/*nvidia* >/dev/null 2>&1 || ldconfig -p | grep -q libnvidia-opencl; then
  run_ctest ctest-ocl opencl:gpu "$logdir/ctest_opencl_gpu.log" "$(limit 110)"
  tail -n 15 "$logdir/ctest_opencl_gpu.log" | tee -a "$mainlog"
else
  note[ctest-ocl]="NVIDIA OpenCL ICD not present: skipped"
  say "${note[ctest-ocl]}"
fi

# ------------------------------------------------------------------ benchmarks
say "== bench"
blog="$logdir/bench.log"
: > "$blog"
lcb="$build/bench/launch_cuda_bench"
if [ -x "$lcb" ]; then
  if AXLE_DEVICE=cuda:0 run_phase_cmd "$(limit 90)" "$blog" "$lcb" --json "$logdir/launch_cuda_bench.json"; then
    pass[bench]=$((pass[bench] + 1))
  else
    fail[bench]=$((fail[bench] + 1))
  fi
else
  note[bench]="no launch_cuda_bench (configure with -DAXLE_BUILD_BENCH=ON)"
fi
for b in "$build"/bench/*; do
  [ -f "$b" ] && [ -x "$b" ] || continue
  name=$(basename "$b")
  [ "$name" = launch_cuda_bench ] && continue
  head -c4 "$b" | grep -q ELF || continue
  args=()
  if timeout 10 "$b" --help 2>&1 | grep -q -- '--quick'; then args=(--quick); fi
  if AXLE_DEVICE=cuda:0 run_phase_cmd "$(limit 100)" "$blog" "$b" "${args[@]}"; then
    pass[bench]=$((pass[bench] + 1))
  else
    fail[bench]=$((fail[bench] + 1)); say "  FAIL  $name (see bench.log)"
  fi
done
# GEMM at the sizes the goals name (f32 4096^3, f16/bf16 8192^3), each tensor-core
# variant pinned once against the auto choice, cuBLAS in the same process.
gb="$build/bench/gemm_bench"
if [ -x "$gb" ]; then
  gemm_runs=(
    "auto|--dtype f32 --sizes 4096,8192 --rounds 3 --json $logdir/gemm_f32.json"
    "auto|--dtype bf16 --sizes 4096,8192 --rounds 3 --json $logdir/gemm_bf16.json"
    "auto|--dtype f16 --sizes 4096,8192 --rounds 3"
    "wgmma1|--dtype bf16 --sizes 8192 --rounds 3"
    "mma|--dtype bf16 --sizes 8192 --rounds 3"
  )
  for r in "${gemm_runs[@]}"; do
    tc=${r%%|*}
    read -r -a gargs <<< "${r#*|}"
    echo "+ AXLE_GEMM_TC=$tc gemm_bench ${gargs[*]}" >> "$blog"
    if AXLE_GEMM_TC=$tc AXLE_DEVICE=cuda:0 run_phase_cmd "$(limit 90)" "$blog" "$gb" --device cuda:0 "${gargs[@]}"; then
      pass[bench]=$((pass[bench] + 1))
    else
      fail[bench]=$((fail[bench] + 1)); say "  FAIL  gemm_bench AXLE_GEMM_TC=$tc ${gargs[*]}"
    fi
  done
fi
# Convolution: the ResNet-50 / MobileNet 3x3 layers at batch 32 against cuDNN.
cb="$build/bench/conv_bench"
if [ -x "$cb" ]; then
  for dt in f16 f32; do
    echo "+ conv_bench --device cuda:0 --batch 32 --layers 3x3 --dtype $dt --rounds 3" >> "$blog"
    if run_phase_cmd "$(limit 75)" "$blog" "$cb" --device cuda:0 --batch 32 --layers 3x3 --dtype "$dt" --rounds 3 \
         --json "$logdir/conv_$dt.json"; then
      pass[bench]=$((pass[bench] + 1))
    else
      fail[bench]=$((fail[bench] + 1)); say "  FAIL  conv_bench --dtype $dt"
    fi
  done
  # Backward data and weights against cuDNN's: one 3x3 and one 1x1 layer (f32, batch 8:
  # Axle's direct backward kernels are slow, this stays short).
  bl="3x3 C256 K256 14x14,1x1 C256 K64"
  echo "+ conv_bench --device cuda:0 --batch 8 --layers '$bl' --direction all --rounds 3" >> "$blog"
  if run_phase_cmd "$(limit 60)" "$blog" "$cb" --device cuda:0 --batch 8 --layers "$bl" --direction all --rounds 3 \
       --json "$logdir/conv_bwd.json"; then
    pass[bench]=$((pass[bench] + 1))
  else
    fail[bench]=$((fail[bench] + 1)); say "  FAIL  conv_bench --direction all"
  fi
fi
cat "$blog" >> "$mainlog"
grep -A8 '^launch_cuda_bench on' "$blog" || true
grep -E '^(\+ AXLE_GEMM_TC|[0-9]+x[0-9]+x[0-9]+ )' "$blog" || true
grep -E '^(\+ conv_bench|== |axle |cudnn |axle (nhwc|nchw):|check:|note:|peak)' "$blog" || true

# ------------------------------------------------------------------ summary
elapsed=$(( $(date +%s) - t_start ))
say "== summary (${elapsed}s)"
json="{\"elapsed_s\": $elapsed, \"phases\": {"
sep=""
for p in "${phases[@]}"; do
  say "$(printf '  %-11s pass %3d  fail %3d  %s' "$p" "${pass[$p]}" "${fail[$p]}" "${note[$p]}")"
  json="$json$sep\"$p\": {\"pass\": ${pass[$p]}, \"fail\": ${fail[$p]}, \"note\": \"${note[$p]//\"/\'}\"}"
  sep=", "
done
echo "$json}}" > "$logdir/summary.json"
say "logs: $logdir"
total_fail=0
for p in "${phases[@]}"; do total_fail=$((total_fail + fail[$p])); done
[ $total_fail -eq 0 ]
