"""Load a sweep spec (a W&B sweep config in YAML) and validate it, reporting every problem at once.

Validation runs in three layers: W&B's own JSON schema (shipped by the ``sweeps`` package),
then our run knobs (every parameter is a ``RunConfig`` field with a value of the right type
and range), then combinations that are fine alone but impossible together (``f_max`` above
the Nyquist frequency of some sampled ``sample_rate``). Random and bayes search will sample
such combinations, so they are errors at ``create``, not mid-sweep.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from asc_sweep.errors import Problem, SpecError
from asc_sweep.sweep.config import (
    COMBINED_KNOBS,
    DATASET_FOLDS,
    DEFAULTS,
    KNOB_TYPES,
    KNOBS,
    METRIC_NAMES,
    combination_problems,
    knob_problems,
    range_problems,
    unknown_knob_message,
)
from asc_sweep.sweep.engine import sweeps_schema
from asc_sweep.sweep.recipes import RECIPE_NAMES, resolve

MAX_GRID = 100_000
MAX_SPEC_BYTES = 1 << 20
MAX_DEPTH = 32  # YAML nesting; a spec needs 4 (parameters.NAME.values[i])
MAX_NODES = 100_000  # values after expanding YAML aliases
TOP_LEVEL_KEYS = (
    "method",
    "metric",
    "parameters",
    "early_terminate",
    "run_cap",
    "name",
    "description",
    "command",
    "program",
    "project",
    "entity",
)

# Parameter kinds, by the name of the W&B schema definition each parameter matches.
DISCRETE = {"param_single_value", "param_categorical", "param_categorical_w_probabilities"}
BOUNDED_BY_VALUES = {
    "param_int_uniform",
    "param_uniform",
    "param_quniform",
    "param_loguniform_v2",
    "param_inv_loguniform_v2",
    "param_qloguniform_v2",
}
GRID_KINDS = {"param_single_value", "param_categorical", "param_int_uniform", "param_quniform"}
MAX_COMBINATIONS = 20_000


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep spec: the W&B sweep config as written, plus where it came from."""

    config: dict[str, Any]
    source: str = "spec"

    @property
    def method(self) -> str:
        return str(self.config["method"])

    @property
    def name(self) -> str | None:
        return self.config.get("name")

    @property
    def run_cap(self) -> int | None:
        return self.config.get("run_cap")

    @property
    def parameters(self) -> dict[str, dict[str, Any]]:
        return dict(self.config["parameters"])

    def grid_size(self) -> int | None:
        """Number of configurations in a grid sweep (None for random and bayes)."""
        if self.method != "grid":
            return None
        return math.prod(_grid_count(p) for p in self.parameters.values())


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a YAML sweep spec.

    Raises:
        SpecError: listing every problem, each with its key path and YAML line.
    """
    path = Path(path)
    source = str(path)
    try:
        if path.stat().st_size > MAX_SPEC_BYTES:
            raise SpecError(
                [Problem("", f"{path.stat().st_size} bytes; a sweep spec is at most 1 MB")], source
            )
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise SpecError([Problem("", "no such file")], source) from None
    except IsADirectoryError:
        raise SpecError([Problem("", "is a folder, not a YAML sweep spec")], source) from None
    except UnicodeDecodeError as exc:
        raise SpecError(
            [
                Problem(
                    "",
                    f"not valid UTF-8 (byte {exc.object[exc.start]:#x} at offset "
                    f"{exc.start}); save the spec as UTF-8",
                )
            ],
            source,
        ) from None
    except OSError as exc:
        raise SpecError([Problem("", f"cannot be read: {exc.strerror or exc}")], source) from None
    return parse_spec(text, source)


def parse_spec(text: str, source: str = "spec") -> SweepSpec:
    """Validate YAML text as a sweep spec; see :func:`load_spec`."""
    try:
        if shape := _shape_problem(text):
            raise SpecError([shape], source)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        reason = " ".join(str(exc.problem or exc).split())
        if "'\\t'" in reason:
            reason += "; indent with spaces, not tabs"
        raise SpecError([Problem("", f"YAML syntax error: {reason}", line)], source) from None
    except yaml.YAMLError as exc:
        raise SpecError([Problem("", f"YAML syntax error: {exc}")], source) from None
    lines: dict[tuple[str, ...], int] = {}
    problems = list(_walk_nodes(node, (), lines)) if node is not None else []
    problems += validate_config(data)
    if problems:
        located = [p if p.line else _locate(p, lines) for p in problems]
        raise SpecError(_dedupe(located), source)
    return SweepSpec(config=data, source=source)


def validate_config(data: Any) -> list[Problem]:
    """Every problem with a sweep config dict (empty when it can run)."""
    if not isinstance(data, dict):
        kind = "empty" if data is None else type(data).__name__
        return [
            Problem("", f"a sweep spec is a YAML mapping with method: and parameters:, not {kind}")
        ]
    problems = _schema_problems(data)
    cap = data.get("run_cap")
    if cap is not None and not (isinstance(cap, int) and not isinstance(cap, bool) and cap >= 1):
        problems.append(
            Problem("run_cap", f"{cap!r} is not allowed; run_cap is a whole number >= 1")
        )
    params = data.get("parameters")
    if isinstance(params, dict):
        for name, param in params.items():
            problems += _parameter_problems(str(name), param, data.get("method"))
        bad = {
            p.path.split(".")[1].split("[")[0] for p in problems if p.path.startswith("parameters.")
        }
        if not bad.intersection((*COMBINED_KNOBS, "recipe")):
            problems += _combination_problems(params)
        if not bad.intersection({"dataset", "fold"}):
            problems += _fold_problems(params)
        method = data.get("method")
        if (
            not bad
            and method in ("bayes", "random")
            and all(_one_value(str(name), p) for name, p in params.items())
        ):
            # bayes fails at its first claim; random would hand out one configuration, with
            # one seed, until run_cap (or forever): the same run again and again.
            problems.append(
                Problem(
                    "parameters",
                    f"{method} search needs a parameter to search (values:, or min: and max:); "
                    "every one here is fixed with value: or a single value in values: (use "
                    "method: grid for one run)",
                )
            )
        if method == "bayes":
            problems += [
                Problem(
                    f"parameters.{name}",
                    f"a bayes search would tune the {name} like a hyperparameter, and drift to "
                    f"the {name} that scores best; fix it (value:) and cross-validate the best "
                    "configurations afterwards with a grid over folds and seeds",
                )
                for name in ("dataset", "data_root", "fold", "seed")
                if name in params and name not in bad and not _one_value(name, params[name])
            ]  # fmt: skip
        if not bad and data.get("method") == "grid" and not data.get("run_cap"):
            size = math.prod(_grid_count(p) for p in params.values())
            if size > MAX_GRID:
                problems.append(
                    Problem(
                        "parameters",
                        f"the grid has {size} configurations, more than {MAX_GRID}; "
                        "set run_cap or use fewer values",
                    )
                )
    problems += _metric_problems(data)
    return problems


# --- YAML structure ---------------------------------------------------------------------------


def _shape_problem(text: str) -> Problem | None:
    """Refuse YAML whose aliases expand to a huge document (a "billion laughs" bomb) or that
    nests deeper than any spec needs, from the event stream, before anything is built."""
    expanded: dict[str, int] = {}  # anchor -> nodes it stands for
    stack: list[tuple[str | None, int, int]] = []  # open collections: anchor, nodes, line
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        line = event.start_mark.line + 1 if event.start_mark is not None else 0
        if isinstance(event, yaml.CollectionStartEvent):
            if len(stack) >= MAX_DEPTH:
                return Problem("", f"nested more than {MAX_DEPTH} levels deep", line)
            stack.append((event.anchor, 1, line))
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            anchor, nodes, line = stack.pop()
            if anchor is not None:
                expanded[anchor] = nodes
        elif isinstance(event, yaml.AliasEvent):
            nodes = expanded.get(str(event.anchor), 1)
        elif isinstance(event, yaml.ScalarEvent):
            nodes = 1
            if event.anchor is not None:
                expanded[event.anchor] = 1
        else:
            continue
        if stack:
            anchor, count, start = stack[-1]
            stack[-1] = (anchor, count + nodes, start)
            if count + nodes > MAX_NODES:
                return Problem(
                    "", f"YAML aliases expand to more than {MAX_NODES} values (a YAML bomb?)", line
                )
    return None


def _walk_nodes(
    node: yaml.Node, path: tuple[str, ...], lines: dict[tuple[str, ...], int]
) -> Iterator[Problem]:
    """Record the line of every key and yield duplicate keys (YAML silently keeps the last)."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            child = (*path, key)
            if key in seen:
                yield Problem(
                    ".".join(child), f"duplicate key (first written on line {seen[key]})", line
                )
            seen.setdefault(key, line)
            lines.setdefault(child, line)
            yield from _walk_nodes(value_node, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            child = (*path, str(i))
            lines.setdefault(child, item.start_mark.line + 1)
            yield from _walk_nodes(item, child, lines)


def _locate(problem: Problem, lines: Mapping[tuple[str, ...], int]) -> Problem:
    parts = (
        tuple(problem.path.replace("[", ".").replace("]", "").split(".")) if problem.path else ()
    )
    while parts and parts not in lines:
        parts = parts[:-1]
    line = lines.get(parts) if parts else None
    return Problem(problem.path, problem.message, line)


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[str, str]] = set()
    out = []
    for p in problems:
        if (p.path, p.message) not in seen:
            seen.add((p.path, p.message))
            out.append(p)
    return out


# --- W&B schema -------------------------------------------------------------------------------


def _schema_problems(data: dict[str, Any]) -> list[Problem]:
    validator = sweeps_schema().validator

    problems = []
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            problems.append(Problem(str(key), f"unknown key; allowed: {', '.join(TOP_LEVEL_KEYS)}"))
    for error in validator.iter_errors(data):
        path = list(error.absolute_path)
        if not path and error.validator == "additionalProperties":
            continue  # reported above, with the allowed keys
        if len(path) >= 2 and path[0] == "parameters":
            continue  # parameters get their own, clearer diagnosis
        where = ".".join(str(p) for p in path)
        problems.append(Problem(where, _schema_message(error)))
    return problems


def _schema_message(error: Any) -> str:
    if error.validator == "enum":
        return f"{error.instance!r} is not allowed; allowed: {', '.join(map(str, error.validator_value))}"
    if error.validator == "required":
        return error.message.replace("is a required property", "is required")
    if error.validator == "type":
        return f"{error.instance!r} is not of type {error.validator_value}"
    if error.validator in ("anyOf", "oneOf") and list(error.absolute_path) == ["early_terminate"]:
        et = error.instance
        if not isinstance(et, dict) or et.get("type") != "hyperband":
            return "type: hyperband is the only early termination; allowed keys: type, min_iter, max_iter, s, eta, strict"
        return "hyperband needs min_iter, or max_iter and s (allowed keys: type, min_iter, max_iter, s, eta, strict)"
    return " ".join(str(error.message).split())


# --- parameters -------------------------------------------------------------------------------


def _parameter_problems(name: str, param: Any, method: Any) -> list[Problem]:
    path = f"parameters.{name}"
    if name not in KNOBS:
        return [Problem(path, unknown_knob_message(name))]
    if not isinstance(param, dict):
        return [Problem(path, "must be a mapping with value:, values:, or min: and max:")]
    for key in ("min", "max", "mu", "sigma", "q"):  # value(s): each checked as a knob value
        if _is_number(param.get(key)) and not math.isfinite(param[key]):
            return [Problem(f"{path}.{key}", f"{param[key]!r} is not a finite number")]
    if "values" in param:
        values = param["values"]
        if not isinstance(values, list):
            return [Problem(f"{path}.values", "must be a list of values")]
        if not values:
            return [Problem(f"{path}.values", "is empty; give at least one value")]
    if "min" in param and "max" in param:
        low, high = param["min"], param["max"]
        if _is_number(low) and _is_number(high) and low >= high:
            return [Problem(path, f"min {low} must be less than max {high}")]

    filled = sweeps_schema().fill_parameter(name, param)
    if filled is None:
        return [Problem(path, _parameter_form_message(param))]
    kind, filled_param = filled
    problems = _parameter_value_problems(name, path, kind, filled_param)
    if kind == "param_categorical_w_probabilities":
        probs = filled_param["probabilities"]
        if len(probs) != len(filled_param["values"]):
            problems.append(Problem(f"{path}.probabilities", "needs one probability per value"))
        elif not math.isclose(sum(probs), 1.0, abs_tol=1e-6):
            problems.append(Problem(f"{path}.probabilities", f"sum to {sum(probs):g}, not 1"))
    if method == "grid" and kind == "param_categorical":
        seen: dict[Any, Any] = {}
        for value in filled_param["values"]:
            if (key := _value_key(value)) in seen:
                was = "" if repr(seen[key]) == repr(value) else f" (as {seen[key]!r} before)"
                problems.append(
                    Problem(
                        f"{path}.values",
                        f"{value!r} is listed twice{was}: a grid would "
                        "run each of its configurations twice and the report would count them "
                        "as one; list each value once (a repeat weighs random and bayes draws, "
                        "where it is allowed)",
                    )
                )
                break
            seen[key] = value
    if method == "grid" and kind not in GRID_KINDS:
        problems.append(
            Problem(
                path,
                f"distribution '{filled_param.get('distribution')}' cannot be used with grid "
                "search; use value:, values:, or int_uniform min:/max:",
            )
        )
    return problems


def sampled_knobs(config: Mapping[str, Any]) -> list[str]:
    """The knobs a random or bayes search draws from a range (``min``/``max`` or a
    distribution, not ``values``): a value per run, which the report does not compare level
    by level. A grid enumerates its ranges: none."""
    params = config.get("parameters")
    if config.get("method") not in ("random", "bayes") or not isinstance(params, Mapping):
        return []
    return [
        str(name)
        for name, param in params.items()
        if isinstance(param, dict) and "values" not in param
        and _kind(str(name), param) not in (None, "param_single_value")
    ]  # fmt: skip


def _kind(name: str, param: dict[str, Any]) -> str | None:
    """The engine's kind of a valid parameter (``param_single_value`` is not searched)."""
    filled = sweeps_schema().fill_parameter(name, param)
    return None if filled is None else str(filled[0])


def _parameter_form_message(param: dict[str, Any]) -> str:
    schema = sweeps_schema().sweep_config_jsonschema
    dist = param.get("distribution")
    allowed = sorted(
        {d for definition in schema["definitions"].values() for d in _enum_of(definition)}
    )
    if dist is not None and dist not in allowed:
        return f"unknown distribution {dist!r}; allowed: {', '.join(allowed)}"
    keys = ", ".join(map(str, param)) or "nothing"
    return (
        f"not a valid parameter (has {keys}); write value: X, values: [X, Y], "
        "or min: A and max: B with an optional distribution:"
    )


def _enum_of(definition: Any) -> Iterator[str]:
    if isinstance(definition, dict):
        dist = definition.get("properties", {}).get("distribution", {})
        yield from dist.get("enum", [])
        for sub in definition.get("anyOf", []):
            yield from _enum_of(sub)


def _parameter_value_problems(
    name: str, path: str, kind: str, param: dict[str, Any]
) -> list[Problem]:
    base = KNOB_TYPES[name].split("|")[0].strip()
    if kind in DISCRETE:
        key = "value" if kind == "param_single_value" else "values"
        values = [param["value"]] if key == "value" else param["values"]
        out = []
        for i, value in enumerate(values):
            where = f"{path}.value" if key == "value" else f"{path}.values[{i}]"
            out += [Problem(where, msg) for msg in knob_problems(name, value)]
        return out
    dist = param.get("distribution")
    if base in ("str", "bool"):
        return [
            Problem(path, f"{name} is a {base} knob; use value: or values:, not a distribution")
        ]
    if base == "int" and kind != "param_int_uniform":
        return [
            Problem(
                path,
                f"distribution '{dist}' samples floats but {name} is an integer; "
                "use int_uniform or values:",
            )
        ]
    if kind in BOUNDED_BY_VALUES:
        return [Problem(path, msg) for msg in range_problems(name, param["min"], param["max"])]
    spec = KNOBS[name]
    if kind in ("param_normal", "param_qnormal") and (
        spec.minimum is not None or spec.maximum is not None
    ):
        return [Problem(path, f"distribution '{dist}' is unbounded but {name} must stay in range")]
    return []


def _one_value(name: str, param: dict[str, Any]) -> bool:
    """A parameter a search can draw only one value of: ``value:``, or ``values:`` listing
    one value (maybe more than once: in a search a repeat weighs the draw)."""
    kind = _kind(name, param)
    if kind in ("param_categorical", "param_categorical_w_probabilities"):
        return len({_value_key(v) for v in param["values"]}) == 1
    return kind == "param_single_value"


def _value_key(value: Any) -> Any:
    """A value as a grid cell tells it apart: 16000 and 16000.0 are one value, 1 and True not."""
    if isinstance(value, bool) or value is None:
        return (type(value).__name__, value)
    if _is_number(value):
        return ("number", float(value))
    if isinstance(value, (list, tuple)):
        return ("list", tuple(_value_key(v) for v in value))
    if isinstance(value, dict):
        return ("map", tuple(sorted((str(k), _value_key(v)) for k, v in value.items())))
    return ("text", str(value))


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _grid_count(param: dict[str, Any]) -> int:
    if "values" in param:
        return len(param["values"])
    if (
        "min" in param
        and "max" in param
        and param.get("distribution", "int_uniform") == "int_uniform"
    ):
        return int(param["max"]) - int(param["min"]) + 1
    if "q" in param:
        return max(1, math.ceil((param["max"] - param["min"]) / param["q"]))
    return 1


# --- combinations -----------------------------------------------------------------------------


def _candidates(name: str, param: dict[str, Any] | None) -> list[Any] | None:
    """Values of a knob to try for cross-field checks: all listed values, or a range's ends."""
    if param is None:
        return [DEFAULTS[name]]
    if not isinstance(param, dict):
        return None  # reported by the parameter's own check
    if "value" in param:
        return [param["value"]]
    if "values" in param:
        return list(param["values"]) if isinstance(param["values"], list) else None
    if (
        "min" in param
        and "max" in param
        and param.get("distribution", "")
        in (
            "",
            "int_uniform",
            "uniform",
            "q_uniform",
            "log_uniform_values",
            "q_log_uniform_values",
            "inv_log_uniform_values",
        )
    ):
        return [param["min"], param["max"]]
    return None  # an unbounded distribution: no corner to test


def _recipe_defaults(params: dict[str, Any]) -> list[tuple[dict[str, Any], str | None]]:
    """The defaults of every recipe the spec may run, each with the one arch it is for
    (``paper``: the recipe of each swept arch) or None (any arch)."""
    recipes = _candidates("recipe", params.get("recipe")) or list(RECIPE_NAMES)
    archs = _candidates("arch", params.get("arch")) or [None]
    out = []
    for name in recipes:
        for arch in archs if name == "paper" else [None]:
            try:
                recipe = resolve({"recipe": name, **({"arch": arch} if arch else {})})
                out.append(({**DEFAULTS, **recipe}, arch))
            except KeyError:
                continue  # reported by the knob check
    return out


def _combination_problems(params: dict[str, Any]) -> list[Problem]:
    found: dict[str, Problem] = {}
    for defaults, arch in _recipe_defaults(params):
        _combinations_of(params, defaults, arch, found)
    return list(found.values())


def _combinations_of(
    params: dict[str, Any], defaults: dict[str, Any], arch: str | None, found: dict[str, Problem]
) -> None:
    candidates = {
        k: _candidates(k, params[k]) if k in params else [defaults[k]] for k in COMBINED_KNOBS
    }
    if arch is not None:
        candidates["arch"] = [arch]
    if any(v is None for v in candidates.values()):
        return
    names = list(candidates)
    combos = itertools.product(*(candidates[k] or [] for k in names))
    for combo in itertools.islice(combos, MAX_COMBINATIONS):
        settings = dict(zip(names, combo, strict=True))
        # sample_rate None, the dataset's native rate: the rest is checked when a run knows it
        for key, msg in combination_problems(**settings):
            if key not in found:
                swept = ", ".join(
                    f"{k}={'null' if settings[k] is None else settings[k]}"
                    for k in names
                    if k in params and k != key
                )
                context = f" (with {swept})" if swept else ""
                found[key] = Problem(f"parameters.{key}" if key in params else key, msg + context)


def _fold_problems(params: dict[str, Any]) -> list[Problem]:
    """Every swept fold must exist in every swept dataset that fixes its folds."""
    datasets = _candidates("dataset", params.get("dataset")) or []
    folds = _candidates("fold", params.get("fold")) or []
    for dataset in datasets:
        n = DATASET_FOLDS.get(dataset)
        too_high = [f for f in folds if n is not None and f > n]
        if too_high:
            where = "parameters.fold" if "fold" in params else "fold"
            return [
                Problem(
                    where, f"fold {too_high[0]} does not exist in {dataset}, which has folds 1-{n}"
                )
            ]
    return []


# --- metric and early termination -------------------------------------------------------------


def _metric_problems(data: dict[str, Any]) -> list[Problem]:
    method = data.get("method")
    metric = data.get("metric")
    problems = []
    if method == "bayes" and metric is None:
        problems.append(Problem("metric", "bayes search needs a metric: name and goal"))
    if data.get("early_terminate") is not None and metric is None:
        problems.append(Problem("metric", "early_terminate needs a metric: name and goal"))
    name = metric.get("name") if isinstance(metric, dict) else None
    if isinstance(name, str) and name not in METRIC_NAMES:
        problems.append(
            Problem(
                "metric.name",
                f"unknown metric {name!r}; allowed: {', '.join(METRIC_NAMES)}",
            )
        )
    if isinstance(name, str) and name.startswith("test/"):
        deciders = [what for what, on in (("bayes search", method == "bayes"),
                    ("early termination", data.get("early_terminate") is not None)) if on]  # fmt: skip
        if deciders:
            problems.append(
                Problem(
                    "metric.name",
                    f"{name!r} would select models on the test split ({' and '.join(deciders)} "
                    "decide on it); use a validation metric: val/accuracy, val/macro_f1 or val/loss",
                )
            )
    et = data.get("early_terminate")
    if isinstance(et, dict) and et.get("type") == "hyperband":
        eta = et.get("eta", 3)
        if isinstance(eta, (int, float)) and eta <= 1:
            problems.append(Problem("early_terminate.eta", f"{eta} must be greater than 1"))
        elif (
            "max_iter" in et
            and isinstance(et.get("max_iter"), int)
            and isinstance(et.get("s"), int)
        ) and (et["max_iter"] / eta < 1 or et["s"] < 1):
            problems.append(
                Problem("early_terminate", "max_iter / eta must be at least 1 and s at least 1")
            )
    return problems
