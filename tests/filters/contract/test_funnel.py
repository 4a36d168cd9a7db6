"""funnel.json: the layout, and counts that must add up."""

import json

import pytest

from filters import contract


def test_funnel_layout_adds_up():
    funnel = contract.build_funnel(100, [("download", {"download_failed": 5}),
                                       ("text", {"text_length": 10, "sensitive_word": 1})])
    assert funnel == {
        "input": 100,
        "stages": [
            {"stage": "download", "dropped": {"download_failed": 5}, "remaining": 95},
            {"stage": "text", "dropped": {"text_length": 10, "sensitive_word": 1}, "remaining": 84},
        ],
        "output": 84,
    }
    contract.validate_funnel(json.loads(json.dumps(funnel)))
    broken = dict(funnel, output=85)
    with pytest.raises(ValueError, match="do not add up"):
        contract.validate_funnel(broken)
    with pytest.raises(ValueError, match="unknown drop reasons"):
        contract.build_funnel(10, [("x", {"too_blue": 1})])


def test_a_funnel_from_output_counts_follows_the_stage_order():
    counts = {"clean": 5, "text_length": 2, "download_failed": 1}
    funnel = contract.funnel_from_counts(8, counts, contract.stages())
    assert [s["stage"] for s in funnel["stages"]] == [s.name for s in contract.STAGES if not s.optional]
    assert funnel["stages"][0] == {"stage": "download", "dropped": {"download_failed": 1}, "remaining": 7}
    assert funnel["output"] == 5
    with pytest.raises(ValueError, match="do not add up"):
        contract.funnel_from_counts(9, counts, contract.stages())
    with pytest.raises(ValueError, match="never gives"):
        contract.funnel_from_counts(9, dict(counts, duplicate_image=1), contract.stages())
