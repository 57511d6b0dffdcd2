"""Sticky assignment: which variant a unit gets, from a hash alone.

A unit (an end user, a session, a key, or one request) is hashed with the experiment's salt to
a point in [0, 1); the point picks the variant by the cumulative weights. Nothing is shared or
stored, so every replica, and every process after a reload, gives the same unit the same variant
as long as the salt and the weights stay (changing the variants is a new experiment: new salt).

Two more hashes, each with a salt of its own so the three are independent:

- traffic share: a unit enters only when its point (salt `share:<salt>`) is below `share`;
- exclusion groups: a unit's point in the group (salt `group:<name>`) falls in at most one
  experiment's slot `[slot_start, slot_start + share)`, so it is in at most one of them.

BLAKE2b is used for its speed and spread, not for secrecy: the first 8 bytes as an integer over
2**64 are uniform to within 2**-64.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
from collections.abc import Sequence

SCALE = float(2**64)


def point(salt: str, unit: str) -> float:
    """The unit's place in [0, 1) for this salt."""
    digest = hashlib.blake2b(f"{salt}\x1f{unit}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / SCALE


def pick(weights: Sequence[float], at: float) -> int:
    """The index whose cumulative weight first exceeds `at` (weights sum to 1; zero-weight
    variants are never picked)."""
    edges = list(itertools.accumulate(weights))
    index = bisect.bisect_right(edges, at * edges[-1])
    while index < len(weights) - 1 and weights[index] <= 0:
        index += 1
    return min(index, len(weights) - 1)


def enters(salt: str, unit: str, share: float) -> bool:
    """Whether the unit is in the experiment's traffic share (a group's slot decides instead
    for experiments in an exclusion group)."""
    return share >= 1.0 or point(f"share:{salt}", unit) < share


def in_slot(group: str, unit: str, slot_start: float, share: float) -> bool:
    """Whether the unit's point in the exclusion group falls in this experiment's slot."""
    at = point(f"group:{group}", unit)
    return slot_start <= at < slot_start + share


def variant_index(salt: str, unit: str, weights: Sequence[float]) -> int:
    return pick(weights, point(salt, unit))


def place(share: float, taken: Sequence[tuple[float, float]]) -> float | None:
    """Where a new slot of width `share` starts in a group whose slots `taken` (start, width)
    are in use: the first gap wide enough, or None when there is none."""
    at = 0.0
    for start, width in sorted(taken):
        if start - at >= share - 1e-12:
            return at
        at = max(at, start + width)
    return at if 1.0 - at >= share - 1e-12 else None
