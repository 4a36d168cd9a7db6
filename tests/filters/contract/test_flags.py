"""Flags generated from config dataclasses: each default exists once, in the dataclass."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from filters.contract.flags import Flag, add_flags, config_values, flag


@dataclasses.dataclass(frozen=True)
class StageConfig:
    output: str = dataclasses.field(metadata=flag("where to write"))
    rows: int = dataclasses.field(default=31, metadata=flag("rows per shard"))
    rate: float = dataclasses.field(default=0.5, metadata=flag("keep this share"))
    mode: str = dataclasses.field(default="fast", metadata=flag("how", choices=("fast", "slow")))
    limit: int | None = dataclasses.field(default=None, metadata=flag("at most N", metavar="N"))
    verbose: bool = dataclasses.field(default=False, metadata=flag("say more"))
    resize: bool = dataclasses.field(default=True, metadata=flag("resize images", negative="--no-resize"))
    words: tuple[str, ...] = dataclasses.field(default=("a", "b"), metadata=flag("a word"))
    seed: int = dataclasses.field(default=7, metadata=flag("random seed", name="--random-seed"))
    internal: int = 3  # no flag


@dataclasses.dataclass(frozen=True)
class LibraryConfig:
    """A library's config: no command-line metadata."""

    width: int = 768
    name: str = "vit"
    pretrained: bool = True
    label: str = dataclasses.field(default="x", metadata=flag("a label"))


def parse(argv: list[str], cls=StageConfig, **options) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_flags(parser, cls, **options)
    return parser.parse_args(argv)


def test_defaults_come_from_the_dataclass():
    args = parse(["--output", "o"])
    assert StageConfig(**config_values(args, StageConfig)) == StageConfig(output="o")


def test_each_kind_of_field_parses():
    args = parse(["--output", "o", "--rows", "5", "--rate", "0.25", "--mode", "slow", "--limit", "9", "--verbose",
                  "--no-resize", "--words", "x", "--words", "y", "--random-seed", "1"])
    config = StageConfig(**config_values(args, StageConfig))
    assert config == StageConfig(output="o", rows=5, rate=0.25, mode="slow", limit=9, verbose=True, resize=False,
                                 words=("x", "y"), seed=1)
    with pytest.raises(SystemExit):
        parse(["--mode", "medium"])


def test_help_shows_the_dataclass_defaults_and_no_flag_for_plain_fields(capsys):
    parser = argparse.ArgumentParser()
    add_flags(parser, StageConfig)
    text = parser.format_help()
    assert "rows per shard (default: 31)" in text and "keep this share (default: 0.5)" in text
    assert "--limit N" in text and "--no-resize" in text and "--random-seed" in text
    assert "a word (repeatable)" in text
    assert "--internal" not in text and "--resize " not in text and "--seed" not in text


def test_a_true_default_needs_a_negative_flag():
    @dataclasses.dataclass(frozen=True)
    class Bad:
        on: bool = dataclasses.field(default=True, metadata=flag("on"))

    with pytest.raises(TypeError, match="negative"):
        add_flags(argparse.ArgumentParser(), Bad)


def test_required_exclude_and_a_preset():
    with pytest.raises(SystemExit):
        parse([], required=("output",))
    args = parse(["--output", "o"], exclude=("rows",), defaults=StageConfig(output="-", rate=0.9))
    assert "rows" not in vars(args)
    values = config_values(args, StageConfig)
    assert values["rate"] == 0.9 and "rows" not in values
    assert StageConfig(**values).rows == 31


def test_only_spreads_one_config_over_groups():
    parser = argparse.ArgumentParser()
    add_flags(parser.add_argument_group("data"), StageConfig, only=("output", "rows"))
    add_flags(parser.add_argument_group("rest"), StageConfig, exclude=("output", "rows"))
    titles = {group.title: [a.dest for a in group._group_actions] for group in parser._action_groups}
    assert titles["data"] == ["output", "rows"]
    assert "rate" in titles["rest"] and "output" not in titles["rest"]
    args = parser.parse_args(["--output", "o", "--rows", "2", "--rate", "0.1"])
    assert StageConfig(**config_values(args, StageConfig)) == StageConfig(output="o", rows=2, rate=0.1)


def test_specs_give_flags_to_a_config_without_metadata():
    specs = {"width": Flag("the width"), "pretrained": Flag("random weights", negative="--no-pretrained"),
             "label": Flag("another label", name="--tag")}
    parser = argparse.ArgumentParser()
    add_flags(parser, LibraryConfig, specs=specs)
    text = parser.format_help()
    assert "the width (default: 768)" in text and "--name" not in text
    assert "--tag" in text and "--label" not in text  # a spec overrides the field's own flag
    args = parser.parse_args(["--width", "64", "--no-pretrained", "--tag", "y"])
    values = config_values(args, LibraryConfig, specs=specs)
    assert values == {"width": 64, "pretrained": False, "label": "y"}
    assert LibraryConfig(**config_values(parser.parse_args([]), LibraryConfig, specs=specs)) == LibraryConfig()


def test_misspelt_field_names_are_refused():
    with pytest.raises(TypeError, match="widht"):
        add_flags(argparse.ArgumentParser(), LibraryConfig, specs={"widht": Flag("typo")})
    with pytest.raises(TypeError, match="rowz"):
        add_flags(argparse.ArgumentParser(), StageConfig, only=("rowz",))
    with pytest.raises(TypeError, match="widht"):
        config_values({}, LibraryConfig, specs={"widht": Flag("typo")})


def test_config_values_reads_a_mapping_and_keeps_tuple_defaults_when_not_given():
    values = config_values({"output": "o", "words": None, "unrelated": 1}, StageConfig)
    assert values == {"output": "o"}
    assert config_values({"words": ["z"]}, StageConfig) == {"words": ("z",)}
