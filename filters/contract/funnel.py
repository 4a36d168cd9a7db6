"""funnel.json: how many pairs each stage of the filter dropped, and why.

    {"input": N, "stages": [{"stage": s, "dropped": {reason: n}, "remaining": n}, ...], "output": n}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from filters.contract.vocabulary import DropReason, Stage


def build_funnel(input_count: int, stages: Iterable[tuple[str, Mapping[str, int]]]) -> dict:
    """The funnel from the input count and each stage's drops, in order."""
    remaining = int(input_count)
    out_stages = []
    for stage, dropped in stages:
        unknown = set(dropped) - set(DropReason)
        if unknown:
            raise ValueError(f"stage {stage!r}: unknown drop reasons {sorted(unknown)}")
        dropped = {str(reason): int(n) for reason, n in dropped.items()}
        remaining -= sum(dropped.values())
        if remaining < 0:
            raise ValueError(f"stage {stage!r} drops more pairs than remain")
        out_stages.append({"stage": stage, "dropped": dropped, "remaining": remaining})
    return {"input": int(input_count), "stages": out_stages, "output": remaining}


def funnel_from_counts(input_count: int, counts: Mapping[str, int], stages: Iterable[Stage]) -> dict:
    """The funnel from counts per drop reason (and "clean": the pairs kept) over `stages`.

    Raises ValueError when the counts hold a reason none of the stages gives, or when the kept and
    dropped pairs do not add up to the input.
    """
    stages = tuple(stages)
    known = {reason for stage in stages for reason in stage.reasons}
    unknown = set(counts) - {"clean"} - known
    if unknown:
        raise ValueError(f"reject shards hold reasons this configuration never gives: {sorted(unknown)}")
    funnel = build_funnel(input_count, [(stage.name, {r: counts[r] for r in stage.reasons if counts.get(r)})
                                        for stage in stages])
    if funnel["output"] != counts.get("clean", 0):
        dropped = sum(v for k, v in counts.items() if k != "clean")
        raise ValueError(f"outputs do not add up: {input_count} raw rows, {counts.get('clean', 0)} clean, "
                         f"{dropped} rejected")
    return funnel


def validate_funnel(funnel: Mapping[str, Any]) -> None:
    """Raise ValueError unless `funnel` has the layout of build_funnel and adds up."""
    for key in ("input", "stages", "output"):
        if key not in funnel:
            raise ValueError(f"funnel: missing key {key!r}")
    rebuilt = build_funnel(funnel["input"], [(s["stage"], s["dropped"]) for s in funnel["stages"]])
    if rebuilt != dict(funnel):
        raise ValueError("funnel: remaining/output counts do not add up")
