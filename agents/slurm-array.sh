#!/bin/bash
# Agents of one sweep as a SLURM job array: each array task is one agent on one GPU.
#
#   sbatch --array=0-7 agents/slurm-array.sh k3x9qa --store postgresql://asc@dbhost:5432/asc
#   sbatch --array=0-7 agents/slurm-array.sh lab/asc/abc123      # a W&B sweep (wandb backend)
#
# A sweep that spans nodes needs a store every node reaches: a PostgreSQL server (compute
# nodes need no internet; `--store` or ASC_SWEEP_STORE, the password in PGPASSWORD or
# ~/.pgpass, never on the command line) or W&B (cloud or a W&B Server). A local store is one
# SQLite file for the agents of ONE host (SQLite's WAL mode needs shared memory, and leases
# use each host's clock): never point tasks on several nodes at one store file, on NFS or any
# other shared file system. `asc-sweep store migrate --from FILE.db --to postgresql://...`
# moves a sweep started in a file onto the server.
#
# asc-sweep must be installed on the nodes (ASC_SWEEP_VENV, default ~/asc-sweep/.venv, with
# `pip install 'asc-sweep[postgres]'`), or set ASC_SWEEP_SIF to an Apptainer image built from
# the Docker image.
#SBATCH --job-name=asc-sweep
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=4
#SBATCH --mem=24G
#SBATCH --time=24:00:00
#SBATCH --output=asc-sweep-%A_%a.log
set -euo pipefail

usage="usage: sbatch --array=0-N $0 SWEEP_ID --store postgresql://USER@HOST:PORT/DB [agent options]
   or: sbatch --array=0-N $0 ENTITY/PROJECT/SWEEP_ID [agent options]"
if [ $# -lt 1 ]; then
    echo "$usage" >&2
    exit 2
fi
store=${ASC_SWEEP_STORE:-}
previous=""
for arg in "$@"; do
    case "$previous" in --store) store=$arg ;; esac
    case "$arg" in --store=*) store=${arg#--store=} ;; esac
    previous=$arg
done
case "$1" in
    */*/*) ;;  # a W&B sweep: W&B is the controller
    *)
        case "$store" in
            postgresql://*|postgres://*) ;;
            *)
                echo "error: sweep $1 needs a store every node reaches: --store postgresql://..." \
                     "(a local store file '${store:-./asc-sweep.db}' cannot be shared between" \
                     "nodes; for one node run 'asc-sweep launch $1 --agents N' in a single job)" >&2
                exit 2
                ;;
        esac
        case "$store" in
            *://*:*@*)
                echo "error: put the store's password in PGPASSWORD or ~/.pgpass, not in the" \
                     "URL (the command line of every task is visible to every user)" >&2
                exit 2
                ;;
        esac
        ;;
esac
export ASC_SWEEP_CACHE=${ASC_SWEEP_CACHE:-${TMPDIR:-/tmp}/asc-sweep-cache}
export ASC_SWEEP_HOST=${ASC_SWEEP_HOST:-${SLURMD_NODENAME:-$(hostname)}}
threads=${SLURM_CPUS_PER_TASK:-4}

if [ -n "${ASC_SWEEP_SIF:-}" ]; then
    # The image sets its own cache and W&B folders (/cache, /runs); point them at writable ones.
    export APPTAINERENV_ASC_SWEEP_CACHE=$ASC_SWEEP_CACHE APPTAINERENV_WANDB_DIR=${WANDB_DIR:-$PWD}
    exec apptainer run --nv "$ASC_SWEEP_SIF" agent "$@" --threads "$threads"
fi
exec "${ASC_SWEEP_VENV:-$HOME/asc-sweep/.venv}/bin/asc-sweep" agent "$@" --threads "$threads"
