"""Sweep specs: loading and validation, the run knobs (``RunConfig``), the bridge to W&B's ``sweeps`` engine."""
