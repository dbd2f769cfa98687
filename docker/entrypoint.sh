#!/bin/sh
# Entry point of the agent image: `asc-sweep ARGS...`.
#
# With AGENTS_PER_GPU set (and no arguments but `agent SWEEP ...`), starts that many agents per
# visible GPU, each pinned with CUDA_VISIBLE_DEVICES, and exits when they all have; this is
# how one container uses a whole multi-GPU node. Otherwise it runs the one command given.
set -eu

if [ "${1:-}" = "agent" ] && [ -n "${AGENTS_PER_GPU:-}" ]; then
    gpus=$(python3 -c "import torch; print(' '.join(str(i) for i in range(torch.cuda.device_count())))")
    if [ -z "$gpus" ]; then
        echo "asc-sweep-entrypoint: AGENTS_PER_GPU is set but no GPU is visible" >&2
        exit 2
    fi
    pids=""
    for gpu in $gpus; do
        i=0
        while [ "$i" -lt "$AGENTS_PER_GPU" ]; do
            CUDA_VISIBLE_DEVICES=$gpu asc-sweep "$@" &
            pids="$pids $!"
            i=$((i + 1))
        done
    done
    trap 'kill -TERM $pids 2>/dev/null' TERM INT
    status=0
    for pid in $pids; do
        wait "$pid" || status=$?
    done
    wait  # agents still shutting down after a signal
    exit "$status"
fi

exec asc-sweep "$@"
