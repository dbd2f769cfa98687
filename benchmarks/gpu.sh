#!/usr/bin/env bash
# Every GPU check and figure in one command (under 10 minutes on one GPU: each step has a limit), printing Markdown
# ready for BENCHMARKS.md: the GPU tests (tests/test_gpu.py), the log-mel front end against
# librosa, every architecture's cost on the GPU, how busy 1, 2 and 4 agents per GPU keep it,
# and segment-voting evaluation (last: it is the step that gives way when time runs short).
#
#   bash benchmarks/gpu.sh [OUT_DIR]        # from the repository root; OUT_DIR default ./gpu-bench
#
# Runs from the source tree with the host's python3 (torch and torchaudio must be there). On a
# host without network, the packages it lacks travel as wheels in ./.whl (wandb, sweeps,
# soundfile, librosa and their needs; see BENCHMARKS.md): they are installed into a private
# folder, nothing is downloaded.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-gpu-bench}}
mkdir -p "$out"
py=${PYTHON:-python3}

if compgen -G ".whl/*.whl" >/dev/null; then
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/asc-sweep-site .whl/*.whl || exit 2
    export PYTHONPATH=/tmp/asc-sweep-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1

# The whole script ends within GPU_BENCH_SECONDS of its start (default 570: a lent GPU host
# may give ten minutes a command): a step gets its own limit or what is left, and is skipped,
# saying so, when under 10 s are left.
deadline=${GPU_BENCH_SECONDS:-570}

step() {  # step NAME SECONDS COMMAND...: run with a time limit, keep its output
    local name=$1 limit=$2 left=$((deadline - SECONDS))
    shift 2
    echo "## $name" | tee "$out/$name.md"
    if ((left < 10)); then
        echo "(skipped: the script's ${GPU_BENCH_SECONDS:-570} s are spent)" | tee -a "$out/$name.md"
        return
    fi
    ((left < limit)) && limit=$left
    timeout "$limit" "$@" 2>&1 | tee -a "$out/$name.md"
    echo "(exit ${PIPESTATUS[0]})" | tee -a "$out/$name.md"
}

nvidia-smi -L | tee "$out/device.txt"
"$py" -c "import torch, torchaudio; print('torch', torch.__version__, 'torchaudio', torchaudio.__version__)" \
    | tee -a "$out/device.txt"
# The CPU front end's compiled kernel, in place, where this host can build it (the features
# table's CPU rows then include it; without a compiler the build says so and torch ops run).
timeout 30 "$py" setup.py -q build_ext --inplace >"$out/kernel-build.txt" 2>&1
"$py" -c "from asc_sweep.data.features import kernel_description as k; print('CPU front end:', k())" \
    | tee -a "$out/device.txt"
step gpu-tests 180 "$py" -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider -o addopts=
step features 60 "$py" benchmarks/features.py --clips 256 --seconds 10 --repeats 2
step models 90 "$py" benchmarks/models.py --device cuda --rates 16000 32000
step utilisation 240 "$py" benchmarks/utilisation.py --agents-per-gpu 1 2 4 --arch cnn10
step evaluation 40 "$py" benchmarks/evaluation.py --device cuda --repeats 3
