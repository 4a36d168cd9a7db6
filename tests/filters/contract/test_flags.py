"""Flags generated from config dataclasses: each default exists once, in the dataclass."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from filters.contract.flags import Flag, add_flags, config_values, flag, option_name


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


# Each kind of field, one assertion per property of the generated action.

@dataclasses.dataclass(frozen=True)
class _Config:
    size: int = dataclasses.field(default=200, metadata=flag("side in px"))
    ratio: float | None = dataclasses.field(default=3.0, metadata=flag("long/short"))
    mode: str = dataclasses.field(default="fast", metadata=flag("how", choices=("fast", "slow")))
    label: str = dataclasses.field(default="", metadata=flag("a label", metavar="TEXT"))
    host_delay_s: float = dataclasses.field(default=0.5, metadata=flag("delay", name="--host-delay"))
    dry_run: bool = dataclasses.field(default=False, metadata=flag("only print"))
    resume: bool = dataclasses.field(default=True, metadata=flag("resume", negative="--no-resume"))
    words: tuple[str, ...] = dataclasses.field(default=("a",), metadata=flag("a word"))
    tags: tuple[str, ...] = dataclasses.field(default_factory=tuple, metadata=flag("a tag", metavar="TAG"))
    optional_name: str | None = dataclasses.field(default=None, metadata=flag("a name"))
    internal: int = 7  # no flag


def _parser(**kwargs) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="p")
    add_flags(parser, _Config, **kwargs)
    return parser


def _actions(parser) -> dict:
    return {a.dest: a for a in parser._actions if a.dest != "help"}


def test_only_fields_with_flag_metadata_become_flags_named_after_the_field():
    actions = _actions(_parser())
    assert set(actions) == {"size", "ratio", "mode", "label", "host_delay_s", "dry_run", "resume",
                            "words", "tags", "optional_name"}
    assert actions["size"].option_strings == ["--size"]
    assert actions["optional_name"].option_strings == ["--optional-name"]
    assert actions["host_delay_s"].option_strings == ["--host-delay"]


def test_option_name_is_the_dashed_field_name_unless_the_flag_names_itself():
    fields = {f.name: f for f in dataclasses.fields(_Config)}
    assert option_name(fields["optional_name"]) == "--optional-name"
    assert option_name(fields["host_delay_s"]) == "--host-delay"
    assert option_name(fields["internal"]) == "--internal"


def test_value_flags_carry_type_default_metavar_and_default_in_help():
    actions = _actions(_parser())
    size = actions["size"]
    assert (size.type, size.default, size.metavar, size.help) == (int, 200, "SIZE", "side in px (default: 200)")
    # Optional[float] gives float
    ratio = actions["ratio"]
    assert (ratio.type, ratio.default, ratio.metavar) == (float, 3.0, "RATIO")
    # the metavar is named after the flag, not after the field
    assert actions["host_delay_s"].metavar == "HOST_DELAY"
    assert actions["optional_name"].metavar == "OPTIONAL_NAME"
    assert actions["optional_name"].type is str
    # an explicit metavar wins; an empty or None default is not shown in the help
    assert actions["label"].metavar == "TEXT"
    assert actions["label"].help == "a label"
    assert actions["optional_name"].help == "a name"
    assert actions["optional_name"].default is None


def test_choices_replace_the_metavar():
    mode = _actions(_parser())["mode"]
    assert mode.choices == ("fast", "slow")
    assert mode.metavar is None
    assert mode.help == "how (default: fast)"
    with pytest.raises(SystemExit):
        _parser().parse_args(["--mode", "medium"])


def test_booleans_are_store_true_or_the_named_negative():
    actions = _actions(_parser())
    assert actions["dry_run"].option_strings == ["--dry-run"]
    assert isinstance(actions["dry_run"], argparse._StoreTrueAction)
    assert actions["dry_run"].default is False
    assert actions["resume"].option_strings == ["--no-resume"]
    assert isinstance(actions["resume"], argparse._StoreFalseAction)
    assert actions["resume"].default is True
    args = _parser().parse_args([])
    assert (args.dry_run, args.resume) == (False, True)
    args = _parser().parse_args(["--dry-run", "--no-resume"])
    assert (args.dry_run, args.resume) == (True, False)


def test_a_true_boolean_without_a_negative_is_a_type_error():
    @dataclasses.dataclass(frozen=True)
    class Bad:
        on: bool = dataclasses.field(default=True, metadata=flag("on"))

    with pytest.raises(TypeError, match=r"^Bad\.on: a flag that defaults to True needs flag\(negative='--no-\.\.\.'\)$"):
        add_flags(argparse.ArgumentParser(), Bad)


def test_tuples_are_repeatable_flags():
    actions = _actions(_parser())
    words = actions["words"]
    assert isinstance(words, argparse._AppendAction)
    assert (words.default, words.metavar, words.help) == (None, "VALUE", "a word (repeatable)")
    assert actions["tags"].metavar == "TAG"
    args = _parser().parse_args(["--words", "x", "--words", "y"])
    assert args.words == ["x", "y"]


def test_exclude_defaults_and_required():
    actions = _actions(_parser(exclude=("size", "dry_run")))
    assert "size" not in actions and "dry_run" not in actions and "ratio" in actions
    preset = _Config(size=64, mode="slow", resume=False)
    actions = _actions(_parser(defaults=preset))
    assert actions["size"].default == 64
    assert actions["size"].help == "side in px (default: 64)"
    assert actions["mode"].default == "slow"
    assert isinstance(actions["resume"], argparse._StoreTrueAction)  # preset False: --resume turns it on
    actions = _actions(_parser(required=("size",)))
    assert actions["size"].required is True
    assert actions["size"].default is None
    assert actions["ratio"].required is False
    with pytest.raises(SystemExit):
        _parser(required=("size",)).parse_args([])


def test_default_factory_gives_the_default():
    @dataclasses.dataclass(frozen=True)
    class Factory:
        n: int = dataclasses.field(default_factory=lambda: 5, metadata=flag("n"))
        m: int = dataclasses.field(default=0, metadata=flag("m"))

    actions = _actions(_build(Factory))
    assert actions["n"].default == 5
    assert actions["n"].help == "n (default: 5)"
    assert actions["m"].help == "m (default: 0)"


def _build(cls):
    parser = argparse.ArgumentParser()
    add_flags(parser, cls)
    return parser


def test_config_values_round_trip_the_parsed_flags():
    args = _parser().parse_args(["--size", "300", "--words", "x", "--words", "y", "--no-resume"])
    values = config_values(args, _Config)
    assert "internal" not in values
    assert values["size"] == 300
    assert values["words"] == ("x", "y")  # lists become tuples
    assert "tags" not in values  # a repeatable flag not given keeps the field's default
    assert values["optional_name"] is None  # a None that is not a tuple default is passed on
    assert values["resume"] is False
    config = _Config(**values)
    assert (config.size, config.words, config.tags, config.resume) == (300, ("x", "y"), (), False)


def test_config_values_reads_mappings_and_honours_exclude():
    values = config_values({"size": 9, "mode": "slow", "internal": 1, "unrelated": 2, "tags": ["t"]}, _Config,
                           exclude=("mode",))
    assert values == {"size": 9, "tags": ("t",)}


def test_misspelt_names_are_named_with_the_argument_and_the_class():
    with pytest.raises(TypeError, match=r"^only names fields that _Config does not have: \['rowz'\]$"):
        add_flags(argparse.ArgumentParser(), _Config, only=("rowz",))
    with pytest.raises(TypeError, match=r"^specs names fields that _Config does not have: \['b', 'z'\]$"):
        add_flags(argparse.ArgumentParser(), _Config, specs={"z": Flag("z"), "b": Flag("b"), "size": Flag("s")})
    with pytest.raises(TypeError, match=r"^specs names fields that _Config does not have: \['z'\]$"):
        config_values({}, _Config, specs={"z": Flag("z")})


def test_flag_passes_its_options_on():
    # Built inside the test (not at import) so that flag() itself runs here.
    @dataclasses.dataclass(frozen=True)
    class Local:
        level: str = dataclasses.field(default="low", metadata=flag("level", choices=("low", "high")))
        size: int = dataclasses.field(default=1, metadata=flag("size", name="--px", metavar="PIXELS"))
        on: bool = dataclasses.field(default=True, metadata=flag("on", negative="--off"))

    spec = dataclasses.fields(Local)[1].metadata["cli_flag"]
    assert spec == Flag("size", name="--px", metavar="PIXELS")
    actions = _actions(_build(Local))
    assert actions["level"].choices == ("low", "high")
    assert actions["size"].option_strings == ["--px"] and actions["size"].metavar == "PIXELS"
    assert actions["on"].option_strings == ["--off"]


def test_the_metavar_is_the_upper_case_flag_name_without_its_dashes():
    @dataclasses.dataclass(frozen=True)
    class Jvm:
        heap: str = dataclasses.field(default="1g", metadata=flag("heap", name="--Xmx"))
        x_ray: int = dataclasses.field(default=0, metadata=flag("x"))

    actions = _actions(_build(Jvm))
    assert actions["heap"].metavar == "XMX"
    assert actions["x_ray"].metavar == "X_RAY"
