#!/usr/bin/env bash
# Wheels for benchmarks/gpu.sh on a GPU host without network: run here (where PyPI is
# reachable), then carry ./.whl to the GPU host. Downloads what asc-sweep's GPU checks need
# for CPython 3.12 on x86-64 Linux (wandb with the sweeps engine, soundfile, librosa and all
# their needs) and drops only the large compiled packages every CUDA PyTorch image holds (numpy,
# scipy, scikit-learn, numba, llvmlite: 121 MB of the 152), so that what travels stays small.
# Everything else travels even where the image may hold it: an image's older
# typing_extensions or protobuf, or a missing platformdirs, would stop `import wandb` there.
# librosa is pinned to the release the CPU tables were measured with. Keep .whl out of git
# (.gitignore does).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
present="numpy scipy scikit_learn numba llvmlite"  # in the image: not carried
rm -rf .whl && mkdir .whl
"$py" -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
    -d .whl "wandb[sweeps]==${WANDB_VERSION:-0.31.0}" "soundfile>=0.12" \
    "librosa==${LIBROSA_VERSION:-0.11.0}"
for name in $present; do
    rm -f .whl/"$name"-[0-9]*.whl
done
du -sh .whl
ls .whl
