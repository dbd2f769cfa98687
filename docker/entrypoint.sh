#!/bin/sh
# Entry point of the agent image: `asc-sweep ARGS...`.
#
# With AGENTS_PER_GPU set, `agent SWEEP [options]` becomes `launch SWEEP --agents-per-gpu N
# [options]`: N supervised agents per visible GPU, each pinned with CUDA_VISIBLE_DEVICES,
# restarted if they die, until the sweep is done; this is how one container uses a whole
# multi-GPU node. Otherwise it runs the one command given.
set -eu

if [ "${1:-}" = "agent" ] && [ -n "${AGENTS_PER_GPU:-}" ]; then
    shift
    if [ $# -lt 1 ]; then
        echo "asc-sweep-entrypoint: give the sweep: agent SWEEP [options]" >&2
        exit 2
    fi
    sweep=$1
    shift
    exec asc-sweep launch "$sweep" --agents-per-gpu "$AGENTS_PER_GPU" "$@"
fi

exec asc-sweep "$@"
