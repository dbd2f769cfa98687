#!/bin/bash
# Agents of one sweep as a SLURM job array: each array task is one agent on one GPU.
#
#   sbatch --array=0-7 agents/slurm-array.sh lab/asc/abc123                  # W&B sweep
#   sbatch --array=0-7 agents/slurm-array.sh ID --store /shared/asc.db       # local store*
#
# asc-sweep must be installed on the nodes (ASC_SWEEP_VENV, default ~/asc-sweep/.venv), or set
# ASC_SWEEP_SIF to an Apptainer image built from the Docker image. *A local store needs a
# shared file system with working POSIX locks (not NFS); W&B sweeps need nothing shared.
#SBATCH --job-name=asc-sweep
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=4
#SBATCH --mem=24G
#SBATCH --time=24:00:00
#SBATCH --output=asc-sweep-%A_%a.log
set -euo pipefail

if [ $# -lt 1 ]; then
    echo "usage: sbatch --array=0-N $0 SWEEP [agent options]" >&2
    exit 2
fi
export ASC_SWEEP_CACHE=${ASC_SWEEP_CACHE:-${TMPDIR:-/tmp}/asc-sweep-cache}
threads=${SLURM_CPUS_PER_TASK:-4}

if [ -n "${ASC_SWEEP_SIF:-}" ]; then
    # The image sets its own cache and W&B folders (/cache, /runs); point them at writable ones.
    export APPTAINERENV_ASC_SWEEP_CACHE=$ASC_SWEEP_CACHE APPTAINERENV_WANDB_DIR=${WANDB_DIR:-$PWD}
    exec apptainer run --nv "$ASC_SWEEP_SIF" agent "$@" --threads "$threads"
fi
exec "${ASC_SWEEP_VENV:-$HOME/asc-sweep/.venv}/bin/asc-sweep" agent "$@" --threads "$threads"
