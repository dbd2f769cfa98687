"""Group-aware, stratified assignment of clips to folds: no group straddles two folds."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Sequence


def _order_key(seed: int, group: str) -> str:
    return hashlib.sha256(f"{seed}:{group}".encode()).hexdigest()


def group_folds(
    labels: Sequence[str], groups: Sequence[str], n_folds: int, seed: int = 0
) -> list[int]:
    """A fold (1..n_folds) for every clip; clips of one group share a fold.

    Greedy and deterministic: groups, largest first (ties in a seeded hash order), go to the
    fold that holds the fewest clips of the group's main label, then the fewest clips.
    """
    if n_folds < 1:
        raise ValueError("n_folds must be >= 1")
    members: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        members[g].append(i)
    per_label: list[Counter[str]] = [Counter() for _ in range(n_folds)]
    totals = [0] * n_folds
    fold_of_group: dict[str, int] = {}
    for g in sorted(members, key=lambda g: (-len(members[g]), _order_key(seed, g))):
        main = Counter(labels[i] for i in members[g]).most_common(1)[0][0]
        best = min(range(n_folds), key=lambda k: (per_label[k][main], totals[k], k))
        fold_of_group[g] = best + 1
        for i in members[g]:
            per_label[best][labels[i]] += 1
        totals[best] += len(members[g])
    return [fold_of_group[g] for g in groups]


def carve_validation(
    train: Sequence[int],
    labels: Sequence[str],
    groups: Sequence[str],
    fraction: float,
    seed: int = 0,
) -> tuple[list[int], list[int]]:
    """Split training indices into (train, validation), whole groups at a time.

    About ``fraction`` of the clips go to validation, balanced over labels. With fewer than
    two groups nothing can be held out without a leak, and validation is empty.
    """
    if fraction <= 0 or len({groups[i] for i in train}) < 2:
        return list(train), []
    n_parts = max(2, round(1 / fraction))
    parts = group_folds([labels[i] for i in train], [groups[i] for i in train], n_parts, seed)
    held_out = 1 + seed % n_parts
    keep = [i for i, p in zip(train, parts, strict=True) if p != held_out]
    val = [i for i, p in zip(train, parts, strict=True) if p == held_out]
    return keep, val
