"""Installs the stand-in W&B server (tests/wandb_server.py) in every Python process started
with this folder on PYTHONPATH and WANDB_TEST_PLAN set: the launcher's agent processes."""

import os

if os.environ.get("WANDB_TEST_PLAN"):
    from pathlib import Path

    import wandb_server

    wandb_server.install(Path(os.environ["WANDB_TEST_PLAN"]))
