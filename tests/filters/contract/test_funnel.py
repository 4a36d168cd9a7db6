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


def test_a_funnel_with_no_stages_outputs_its_input():
    assert contract.build_funnel(7, []) == {"input": 7, "stages": [], "output": 7}


def test_drop_reasons_are_written_as_plain_strings_and_counts_as_ints():
    funnel = contract.build_funnel(5, [("image_size", {contract.DropReason.ASPECT_RATIO: 2})])
    assert funnel["stages"][0]["dropped"] == {"aspect_ratio": 2}
    assert type(next(iter(funnel["stages"][0]["dropped"]))) is str  # a plain key, as JSON reads it back
    funnel = contract.build_funnel(5.0, [("download", {"download_failed": 2.0})])
    assert funnel == {"input": 5, "stages": [{"stage": "download", "dropped": {"download_failed": 2},
                                              "remaining": 3}], "output": 3}
    assert all(type(v) is int for v in (funnel["input"], funnel["output"], funnel["stages"][0]["remaining"]))


def test_a_stage_may_drop_every_pair_but_not_more():
    assert contract.build_funnel(3, [("download", {"download_failed": 3})])["output"] == 0
    with pytest.raises(ValueError, match="stage 'text' drops more pairs than remain"):
        contract.build_funnel(3, [("download", {"download_failed": 1}), ("text", {"text_length": 3})])


def test_unknown_reasons_are_named_sorted():
    with pytest.raises(ValueError, match=r"stage 'x': unknown drop reasons \['a_reason', 'too_blue'\]"):
        contract.build_funnel(10, [("x", {"too_blue": 1, "a_reason": 1, "text_length": 1})])


def test_funnel_from_counts_leaves_out_reasons_that_dropped_nothing():
    counts = {"clean": 4, "aspect_ratio": 1, "image_too_small": 0}
    funnel = contract.funnel_from_counts(5, counts, contract.stages())
    image_size = next(s for s in funnel["stages"] if s["stage"] == "image_size")
    assert image_size["dropped"] == {"aspect_ratio": 1}
    assert all(s["dropped"] == {} for s in funnel["stages"] if s["stage"] != "image_size")
    contract.validate_funnel(funnel)


def test_funnel_from_counts_with_nothing_kept():
    funnel = contract.funnel_from_counts(2, {"download_failed": 2}, contract.stages())
    assert funnel["output"] == 0
    with pytest.raises(ValueError, match="outputs do not add up: 3 raw rows, 0 clean, 2 rejected"):
        contract.funnel_from_counts(3, {"download_failed": 2}, contract.stages())


def test_the_optional_stage_counts_only_when_it_runs():
    counts = {"clean": 3, "duplicate_image": 1}
    with pytest.raises(ValueError, match=r"never gives: \['duplicate_image'\]"):
        contract.funnel_from_counts(4, counts, contract.stages())
    funnel = contract.funnel_from_counts(4, counts, contract.stages(with_optional=True))
    assert funnel["stages"][-1] == {"stage": "image_dedup", "dropped": {"duplicate_image": 1}, "remaining": 3}


def test_the_add_up_error_reports_the_three_counts():
    counts = {"clean": 5, "text_length": 2, "download_failed": 1}
    with pytest.raises(ValueError, match="outputs do not add up: 9 raw rows, 5 clean, 3 rejected"):
        contract.funnel_from_counts(9, counts, contract.stages())


@pytest.mark.parametrize("key", ["input", "stages", "output"])
def test_validate_funnel_names_a_missing_key(key):
    funnel = contract.build_funnel(3, [("download", {"download_failed": 1})])
    del funnel[key]
    with pytest.raises(ValueError, match=f"funnel: missing key '{key}'"):
        contract.validate_funnel(funnel)


def test_validate_funnel_checks_each_stage_remaining():
    funnel = contract.build_funnel(10, [("download", {"download_failed": 1}), ("text", {"text_length": 2})])
    funnel["stages"][0]["remaining"] = 8
    with pytest.raises(ValueError, match="^funnel: remaining/output counts do not add up$"):
        contract.validate_funnel(funnel)
