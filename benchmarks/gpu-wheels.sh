#!/usr/bin/env bash
# Wheels for benchmarks/gpu.sh on a GPU host without network: run here (where PyPI is
# reachable), then carry ./.whl to the GPU host. Downloads what asc-sweep's GPU checks need
# for CPython 3.12 on x86-64 Linux (wandb with the sweeps engine, soundfile, librosa and their
# needs) and drops the packages such hosts' CUDA images already hold (torch, numpy, scipy, ...),
# so that what travels stays small. Keep .whl out of git: echo /.whl/ >> .git/info/exclude
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
# Packages a typical CUDA PyTorch image holds (edit for yours): their wheels are not carried.
present="numpy scipy scikit_learn numba llvmlite joblib threadpoolctl msgpack lazy_loader
pyyaml requests urllib3 idna certifi charset_normalizer click packaging typing_extensions
protobuf anyio h11 httpcore httpx sniffio attrs narwhals platformdirs cloudpickle xxhash"
rm -rf .whl && mkdir .whl
"$py" -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
    -d .whl "wandb[sweeps]==${WANDB_VERSION:-0.31.0}" "soundfile>=0.12" "librosa>=0.10"
for name in $present; do
    rm -f .whl/"$name"-[0-9]*.whl
done
du -sh .whl
ls .whl
