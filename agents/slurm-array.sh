#!/bin/bash
# Agents of one sweep as a SLURM job array: each array task is one agent on one GPU.
#
#   sbatch --array=0-7 agents/slurm-array.sh lab/asc/abc123      # a W&B sweep (wandb backend)
#
# A sweep that spans nodes needs a controller every node reaches: the wandb backend (W&B cloud
# or a W&B Server). A local store is one SQLite file for the agents of ONE host (SQLite's WAL
# mode needs shared memory, and leases use each host's clock): never point tasks on several
# nodes at one store file, on NFS or any other shared file system. For a local sweep on a
# single node, run `asc-sweep launch ID --agents N --gpus ...` in one job instead.
#
# asc-sweep must be installed on the nodes (ASC_SWEEP_VENV, default ~/asc-sweep/.venv), or set
# ASC_SWEEP_SIF to an Apptainer image built from the Docker image.
#SBATCH --job-name=asc-sweep
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=4
#SBATCH --mem=24G
#SBATCH --time=24:00:00
#SBATCH --output=asc-sweep-%A_%a.log
set -euo pipefail

if [ $# -lt 1 ]; then
    echo "usage: sbatch --array=0-N $0 ENTITY/PROJECT/SWEEP_ID [agent options]" >&2
    exit 2
fi
case "$1" in
    */*/*) ;;
    *)
        echo "error: $1 is not a W&B sweep (ENTITY/PROJECT/SWEEP_ID); a local store cannot be shared" \
             "between nodes: run 'asc-sweep launch $1 --agents N' in a single-node job instead" >&2
        exit 2
        ;;
esac
export ASC_SWEEP_CACHE=${ASC_SWEEP_CACHE:-${TMPDIR:-/tmp}/asc-sweep-cache}
threads=${SLURM_CPUS_PER_TASK:-4}

if [ -n "${ASC_SWEEP_SIF:-}" ]; then
    # The image sets its own cache and W&B folders (/cache, /runs); point them at writable ones.
    export APPTAINERENV_ASC_SWEEP_CACHE=$ASC_SWEEP_CACHE APPTAINERENV_WANDB_DIR=${WANDB_DIR:-$PWD}
    exec apptainer run --nv "$ASC_SWEEP_SIF" agent "$@" --threads "$threads"
fi
exec "${ASC_SWEEP_VENV:-$HOME/asc-sweep/.venv}/bin/asc-sweep" agent "$@" --threads "$threads"
