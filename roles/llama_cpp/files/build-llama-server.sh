#!/bin/sh
# Build llama-server and llama-bench from a pinned source archive and package them.
#   build-llama-server.sh SOURCE_ARCHIVE SUBDIR BACKEND JOBS OUTPUT_TARBALL [GPU_ARCHS]
# SUBDIR is the llama.cpp tree inside the archive (e.g. llama_cpp_python-0.3.36/vendor/llama.cpp).
# BACKEND is cpu, cuda or rocm. GGML_NATIVE=OFF keeps the binary portable to any x86-64 host.
# GPU_ARCHS (cuda: CMAKE_CUDA_ARCHITECTURES such as "80;90", rocm: AMDGPU_TARGETS such as
# "gfx90a;gfx942") names the GPUs the binary carries code for; empty: the toolkit's default.
# The output tarball holds bin/ (and lib/ when the backend needs shared objects); it is
# written to a temporary name and renamed, so a failed build leaves no artifact behind.
set -eu
src=$1; subdir=$2; backend=$3; jobs=$4; out=$5; archs=${6:-}
work=$(mktemp -d "${TMPDIR:-/tmp}/llama-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
tar -xzf "$src" -C "$work"
tree="$work/$subdir"
case "$backend" in
  cpu) extra="" ;;
  cuda) extra="-DGGML_CUDA=ON${archs:+ -DCMAKE_CUDA_ARCHITECTURES=$archs}" ;;
  rocm) extra="-DGGML_HIP=ON${archs:+ -DAMDGPU_TARGETS=$archs}" ;;
  *) echo "unknown backend: $backend" >&2; exit 2 ;;
esac
# shellcheck disable=SC2086
cmake -S "$tree" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF \
  -DGGML_NATIVE=OFF -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF $extra
cmake --build "$work/build" --target llama-server llama-bench -j "$jobs"
mkdir -p "$work/pkg/bin" "$work/pkg/lib"
cp "$work/build/bin/llama-server" "$work/build/bin/llama-bench" "$work/pkg/bin/"
strip "$work/pkg/bin/"* 2>/dev/null || true
"$work/pkg/bin/llama-server" --version > "$work/pkg/VERSION" 2>&1 || true
tar -czf "$out.part" -C "$work/pkg" .
mv "$out.part" "$out"
