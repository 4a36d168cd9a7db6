"""The vocabularies: one definition each, stored as plain strings."""

import pyarrow as pa

from filters import contract
from filters.contract import DownloadStatus, DropReason


def test_members_are_their_plain_string_values():
    assert DropReason.TEXT_LENGTH == "text_length"
    assert DownloadStatus.SUCCESS == "success"
    assert pa.array([DropReason.SENSITIVE_WORD]).to_pylist() == ["sensitive_word"]


def test_the_stages_name_every_reason_once_in_order():
    reasons = [r for stage in contract.STAGES for r in stage.reasons]
    assert reasons == list(DropReason)
    assert [s.name for s in contract.stages()] == [s.name for s in contract.STAGES if not s.optional]
    assert contract.stages(with_optional=True) == contract.STAGES


def test_the_mask_is_one_constant():
    assert contract.NAME_MASK == "<人名>"
