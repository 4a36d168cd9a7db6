"""The names one stage writes and another reads."""

from filters import contract


def test_step_checkpoint_names_round_trip():
    name = contract.step_checkpoint_name(1200)
    assert name == "step-00001200.pt"
    assert contract.checkpoint_step(name) == 1200
    assert contract.checkpoint_step(contract.BEST_CHECKPOINT) is None
    assert contract.checkpoint_step(".step-00001200.pt.tmp-ab") is None
