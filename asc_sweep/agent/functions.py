"""Run functions: what an agent executes for each configuration, and how one is named."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, Protocol

from asc_sweep.errors import RunFunctionError
from asc_sweep.run.context import RunContext

DEFAULT_FUNCTION = "asc_sweep.run.train:run_for_agent"


class RunFunction(Protocol):
    """Params in, summary metrics out. ``context`` (``run.context.RunContext``) names the run,
    stores per-epoch metrics (``log``), holds the stop flag (``stop``) and the checkpoint
    folder (``run_dir``). A function that loops should return, or raise, soon after
    ``context.stop.is_set`` turns true."""

    def __call__(self, params: dict[str, Any], context: RunContext) -> Mapping[str, Any] | None: ...


def load_run_function(spec: str) -> RunFunction:
    """Import ``package.module:callable``.

    Raises:
        RunFunctionError: the module or attribute cannot be found.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise RunFunctionError(f"--function {spec!r}: write it as package.module:callable")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise RunFunctionError(f"--function {spec!r}: cannot import {exc.name!r}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise RunFunctionError(f"--function {spec!r}: {module_name} has no callable {attr!r}")
    return fn
