"""What of the environment a run recorded (``run.runtime.environment``) can move its figures
where its knobs and seeds do not: the training precision, the device, and the releases of
torch, torchaudio and asc-sweep (with the git revision of its source). The trainer compares
a resumed run's attempts by it, the report compares runs by it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def arithmetic(env: Any) -> dict[str, str]:
    """Those fields of a recorded environment, as the report shows them (empty for a run that
    recorded none)."""
    if not isinstance(env, Mapping):
        return {}
    packages = env.get("packages")
    packages = packages if isinstance(packages, Mapping) else {}
    out = {}
    if env.get("precision"):
        out["precision"] = str(env["precision"])
    if env.get("device_type"):
        out["device"] = f"{env['device_type']} ({env.get('device') or 'unknown'})"
    for name in ("torch", "torchaudio", "asc-sweep"):
        if packages.get(name):
            out[name] = str(packages[name])
    if env.get("git_revision"):  # the sha, shortened; "+dirty" kept
        sha, _, dirty = str(env["git_revision"]).partition("+")
        out["git revision"] = sha[:10] + (f"+{dirty}" if dirty else "")
    return out


def of_run(env: Any) -> dict[str, str]:
    """A run's environment as the report compares it: where attempts in different
    environments trained its epochs (a run put back and resumed on another host), each field
    that changed reads ``first, then second``."""
    out = arithmetic(env)
    attempts = env.get("attempts") if isinstance(env, Mapping) else None
    if not isinstance(attempts, list) or len(attempts) < 2:
        return out
    each = [arithmetic(a.get("environment")) for a in attempts if isinstance(a, Mapping)]
    for key in {k for e in each for k in e}:
        values = list(dict.fromkeys(e.get(key, "unknown") for e in each))
        if len(values) > 1:
            out[key] = ", then ".join(values)
    return out


def counts(environments: Iterable[Mapping[str, str]]) -> dict[str, dict[str, int]]:
    """Each field of these runs' environments (:func:`of_run`), each value with its runs, most
    first."""
    seen: dict[str, dict[str, int]] = {}
    for env in environments:
        for key, value in env.items():
            runs = seen.setdefault(key, {})
            runs[value] = runs.get(value, 0) + 1
    return {
        key: dict(sorted(runs.items(), key=lambda kv: (-kv[1], kv[0])))
        for key, runs in seen.items()
    }


def mixed(environments: Iterable[Mapping[str, str]]) -> dict[str, dict[str, int]]:
    """The fields on which these runs' environments differ, with :func:`counts`' values."""
    return {key: runs for key, runs in counts(environments).items() if len(runs) > 1}


def describe(mixed: Mapping[str, Mapping[str, int]]) -> str:
    """``precision float32 (20 runs), bfloat16 (12 runs); torch ...``: :func:`mixed` in words."""
    return "; ".join(
        f"{key} "
        + ", ".join(
            f"{value} ({runs} run{'s' if runs != 1 else ''})" for value, runs in values.items()
        )
        for key, values in mixed.items()
    )
