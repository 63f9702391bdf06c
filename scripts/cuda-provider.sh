#!/usr/bin/env bash
# Assemble ONNX Runtime's CUDA execution provider for flglm from the npm registry and the PyPI
# mirror, offline (docs/gpu.md): onnxruntime-node 1.29.0 (the version the only registry build of
# the provider matches), the provider libraries beside its core library, and the CUDA 13 libraries
# it links against in .cuda/. Prints the LD_LIBRARY_PATH to run flglm with and what ldd still
# cannot find (on a machine without a GPU: only libcuda.so.1, the driver's).
#
#   bash scripts/cuda-provider.sh [python]      # python: an interpreter whose pip reaches the mirror
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-python3}
ORT_VERSION=1.29.0
PROVIDER=com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9
work=.cuda
mkdir -p "$work"

echo "cuda-provider: onnxruntime-node@$ORT_VERSION (the provider must match its core library exactly)"
npm install --no-save --no-audit --no-fund "onnxruntime-node@$ORT_VERSION" >/dev/null

echo "cuda-provider: $PROVIDER"
( cd "$work" && rm -rf package && npm pack "$PROVIDER" >/dev/null && tar xzf ./*.tgz && rm -f ./*.tgz )
bin=node_modules/onnxruntime-node/bin/napi-v6/linux/x64
cp "$work/package/Plugins/Linux/x64/libonnxruntime_providers_cuda.so" "$work/package/Plugins/Linux/x64/libonnxruntime_providers_shared.so" "$bin/"

echo "cuda-provider: CUDA libraries from the PyPI mirror"
"$PY" -m pip download --no-deps -q -d "$work/wheels" nvidia-cublas nvidia-curand nvidia-cudnn-cu13
for w in "$work"/wheels/*.whl; do unzip -q -o "$w" -d "$work/libs"; done

paths=$(find "$work/libs" -type d -name lib | xargs -I{} readlink -f {} | tr '\n' ':')
for cuda in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda-13.0/lib; do [ -d "$cuda" ] && paths="$paths$cuda:"; done
echo "cuda-provider: run flglm with"
echo "  export LD_LIBRARY_PATH=$paths\${LD_LIBRARY_PATH:-}"
missing=$(LD_LIBRARY_PATH="$paths" ldd "$bin/libonnxruntime_providers_cuda.so" | awk '/not found/ {print $1}' | tr '\n' ' ')
if [ -z "$missing" ]; then echo "cuda-provider: every library resolves; flglm doctor should list cuda"; else echo "cuda-provider: still missing: $missing(libcuda.so.1 comes with the NVIDIA driver, on a machine with a GPU)"; fi
