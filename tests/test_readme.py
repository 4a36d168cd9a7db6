"""README.md stays true.

Every command line in the README's ```bash blocks (continuations joined, comment-only lines
skipped) is either
- marked `# [not run here: X]`, X one of NOT_RUN_HERE, or
- runnable on one offline CPU machine, and then exercised somewhere: by the offline walk-through
  below (the block after OFFLINE_MARKER is run literally), or by a test or CI step named in COVERAGE.

For every command, runnable or marked: a `make TARGET ...` line names a real target (`make -n`
accepts it), and each `--flag` given to a `python -m MODULE` (directly, through torchrun, or through
a Make variable such as TRAIN_ARGS, read from `make -n`) appears in that module's `--help`; Beam's
own pipeline flags are exempt for the Beam jobs. The flag tables and the Make-variable table (each
after a `<!-- readme-test: ... -->` marker) are checked against `--help` and the Makefile.
"""

from __future__ import annotations

import ast
import concurrent.futures
import dataclasses
import functools
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e  # runs whole stages (Beam pipelines, servers, subprocesses)

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
MAKEFILE = REPO / "Makefile"
CI_SCRIPT = REPO / ".ci" / "run"

#: What a command may need that one offline CPU machine lacks.
NOT_RUN_HERE = ("Dataflow", "Flink", "GPU", "internet")
MARKER = re.compile(r"\[not run here: ([^\]]*)\]")
OFFLINE_MARKER = "<!-- readme-test: offline-stages -->"
TABLE_MARKER = re.compile(r"<!-- readme-test: (flags [\w.]+(?: \w+)?|make-variables) -->")

#: Where each runnable command outside the offline block is exercised: a regex over the command,
#: and pytest node ids (the file must define the test) or ".ci/run" (it must run the make target).
COVERAGE: list[tuple[str, tuple[str, ...]]] = [
    (r"^make install$", (".ci/run",)),
    (r"^make test\b", (".ci/run",)),
    (r"^make demo\b", (".ci/run", "tests/pipelines/test_demo.py::test_shortened_demo_end_to_end")),
    (r"^make help$", ("tests/test_readme.py::test_make_help_lists_every_target_the_readme_uses",)),
    (r"^make queries$", ("tests/crawler/test_queries.py::test_cli_writes_the_list",
                         "tests/crawler/test_queries.py::test_default_list_is_deterministic_and_has_the_papers_size_without_excluded_words")),
    (r"^python -m pipelines\.local_catalog\b",
     ("tests/pipelines/test_crawl_catalog.py::test_local_catalog_cli_prints_its_base_url_and_serves",)),
    (r"^make train NPROC=2\b", ("tests/training/trainer/test_train.py::test_torchrun_with_two_gloo_ranks",)),
    (r"^python -m training\.evaluate prompts\b",
     ("tests/training/evaluation/test_cli.py::test_prompts_command_and_help",)),
    (r"^python -m training\.evaluate alignment\b",
     ("tests/training/evaluation/test_cli.py::test_alignment_command_writes_png_and_json",)),
    (r"^python -m benchmarks\.name_masking$",
     ("tests/filters/test_names.py::test_fresh_set_precision_and_recall",
      "tests/filters/test_names.py::test_precision_and_recall_span_by_span")),
    (r"^python -m benchmarks\.download\b",
     ("tests/pipelines/test_crawl_catalog.py::test_download_benchmark_runs_at_a_tiny_size",)),
    (r"^make bench-text-filters$",
     ("tests/filters/test_benchmark_and_layout.py::test_benchmark_reports_speed_and_agreement",
      "tests/benchmarks/test_benchmarks_smoke.py::test_text_filters_cli_writes_the_readme_fields")),
    (r"^(make bench-train$|python -m benchmarks\.train_throughput\b)",
     ("tests/benchmarks/test_benchmarks_smoke.py::test_train_throughput_cli_writes_the_readme_fields",)),
    (r"^make bench-token-wise$",
     ("tests/benchmarks/test_benchmarks_smoke.py::test_token_wise_memory_cli_writes_the_readme_fields",)),
]

#: Modules whose first argument is a subcommand with its own --help.
SUBCOMMAND_MODULES = {"training.evaluate"}
#: Beam jobs: Beam's pipeline flags pass through them.
BEAM_MODULES = {"pipelines.crawl", "pipelines.filter", "pipelines.crawl_local"}
#: Modules that hand the flags they do not know to another module.
PASSES_FLAGS_TO = {"pipelines.crawl_local": "pipelines.crawl"}
#: Make's path and flag variables: removed from the environment so the README's defaults hold.
MAKE_ENVIRONMENT = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")


# --------------------------------------------------------------------------------------------
# Reading the README
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Command:
    text: str  # the command, continuations joined, without its trailing comment
    comment: str  # the trailing comment, "" if none
    line: int  # README line where it starts
    offline: bool  # in the offline stage-by-stage block

    @property
    def marker(self) -> str | None:
        found = MARKER.search(self.comment)
        return found.group(1) if found else None

    def __str__(self) -> str:
        return f"README.md:{self.line}: {self.text}"


def split_comment(line: str) -> tuple[str, str]:
    """(command, comment): a `#` outside quotes, at the start or after a space, starts a comment."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].strip(), line[i + 1:].strip()
    return line.strip(), ""


def read_commands(text: str) -> list[Command]:
    """Every command line of the ```bash blocks."""
    lines = text.splitlines()
    commands: list[Command] = []
    in_block, offline, pending, start = False, False, "", 0
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if not in_block:
            if stripped == "```bash":
                in_block = True
                previous = [s.strip() for s in lines[:number - 1] if s.strip()]
                offline = bool(previous) and previous[-1] == OFFLINE_MARKER
            continue
        if stripped == "```":
            assert not pending, f"README.md:{start}: a bash block ends inside a continued line"
            in_block = False
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        joined, pending = pending + stripped, ""
        command, comment = split_comment(joined)
        if command:
            commands.append(Command(" ".join(command.split()), comment, start, offline))
    assert not in_block, "README.md: a ```bash block is not closed"
    return commands


COMMANDS = read_commands(README.read_text(encoding="utf-8"))
RUNNABLE = [c for c in COMMANDS if c.marker is None]


def ids(commands: list[Command]) -> list[str]:
    return [f"line{c.line}" for c in commands]


# --------------------------------------------------------------------------------------------
# Running things (cached per session)
# --------------------------------------------------------------------------------------------

def clean_environment() -> dict[str, str]:
    """The environment without Make's own variables or the Makefile's, so a `make test` with
    overrides does not leak them into the README's commands."""
    makefile_variables = set(re.findall(r"^([A-Z_]+) *\?=", MAKEFILE.read_text(encoding="utf-8"), re.M))
    drop = makefile_variables | set(MAKE_ENVIRONMENT)
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["NO_ALBUMENTATIONS_UPDATE"] = "1"
    return env


@functools.lru_cache(maxsize=None)
def module_help(module: str) -> str:
    """`python -m MODULE [SUB] --help`, or `torchrun --help` for "torchrun"."""
    if module == "torchrun":
        argv = [os.path.join(os.path.dirname(sys.executable), "torchrun"), "--help"]
    else:
        argv = [sys.executable, "-m", *module.split(), "--help"]
    done = subprocess.run(argv, cwd=REPO, env=clean_environment(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"`{' '.join(argv[1:] if module != 'torchrun' else argv)}` failed:\n{done.stderr[-2000:]}"
    return done.stdout


@functools.lru_cache(maxsize=None)
def make_dry_run(command: str) -> subprocess.CompletedProcess:
    """`make -n TARGET VARS...` in the repository: Make prints the recipes without running them."""
    argv = ["make", "-n", *shlex.split(command)[1:]]
    return subprocess.run(argv, cwd=REPO, env=clean_environment(), capture_output=True, text=True, timeout=60)


@functools.lru_cache(maxsize=None)
def beam_flags() -> frozenset[str]:
    """Every flag of every PipelineOptions view Beam defines (--runner, --project, --flink_master...)."""
    import argparse

    from apache_beam.options import pipeline_options

    def views(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from views(sub)

    flags: set[str] = set()
    for view in views(pipeline_options.PipelineOptions):
        parser = argparse.ArgumentParser(add_help=False)
        try:
            view._add_argparse_args(parser)
        except argparse.ArgumentError:  # a view that re-declares another's flag
            continue
        for action in parser._actions:
            flags.update(action.option_strings)
    assert {"--runner", "--project", "--region", "--temp_location", "--flink_master", "--environment_type",
            "--job_endpoint", "--direct_num_workers", "--num_workers"} <= flags
    return frozenset(flags)


# --------------------------------------------------------------------------------------------
# Which flags go to which module
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Invocation:
    module: str  # "pipelines.crawl", "training.evaluate retrieval", or "torchrun"
    flags: tuple[str, ...]


def flag_names(args: list[str]) -> tuple[str, ...]:
    return tuple(a.split("=", 1)[0] for a in args if a.startswith("--") and len(a) > 2)


def invocations(words: list[str]) -> list[Invocation]:
    """The modules a command line runs (`... -m MODULE [SUB] args`) and the flags each gets; the
    words before `-m` of a torchrun line are torchrun's."""
    if "-m" not in words:
        return []
    at = words.index("-m")
    module, rest = words[at + 1], words[at + 2:]
    if module in SUBCOMMAND_MODULES and rest and not rest[0].startswith("-"):
        module, rest = f"{module} {rest[0]}", rest[1:]
    found = [Invocation(module, flag_names(rest))]
    if os.path.basename(words[0]) == "torchrun":
        found.append(Invocation("torchrun", flag_names(words[1:at])))
    return found


def command_invocations(command: Command) -> list[Invocation]:
    words = shlex.split(command.text)
    if words[0] == "make":
        dry = make_dry_run(command.text)
        assert dry.returncode == 0, f"{command}: `make -n` fails:\n{dry.stderr[-1500:]}"
        return [i for line in dry.stdout.splitlines() if " -m " in line for i in invocations(shlex.split(line))]
    return invocations(words)


def allowed_flags(module: str) -> str:
    """The help text(s) a flag given to `module` may appear in."""
    texts = [module_help(module)]
    if module in PASSES_FLAGS_TO:
        texts.append(module_help(PASSES_FLAGS_TO[module]))
    return "\n".join(texts)


def flag_in_help(flag: str, help_text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", help_text) is not None


def unknown_flags(invocation: Invocation) -> list[str]:
    text = allowed_flags(invocation.module)
    beam = beam_flags() if invocation.module in BEAM_MODULES else frozenset()
    return [f for f in invocation.flags if f not in beam and not flag_in_help(f, text)]


@pytest.fixture(scope="session")
def prefetch_help():
    """Ask every module the README names for its --help at once (each takes seconds to import)."""
    modules = {i.module for c in COMMANDS for i in (_safe(command_invocations, c) or ()) if i.flags}
    modules |= {what.removeprefix("flags ") for what, _, _ in FLAG_TABLES}
    modules |= {m for m in (PASSES_FLAGS_TO.get(m) for m in list(modules)) if m}
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda m: _safe(module_help, m), sorted(modules)))


def _safe(function, *args):
    try:
        return function(*args)
    except AssertionError:  # reported by the test that needs it
        return None


# --------------------------------------------------------------------------------------------
# Commands: markers, coverage, targets, flags
# --------------------------------------------------------------------------------------------

def test_the_readme_has_commands_and_the_offline_block():
    assert len(COMMANDS) > 20
    assert len([c for c in COMMANDS if c.offline]) >= 5, f"no ```bash block right after {OFFLINE_MARKER}"
    assert any(c.marker for c in COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=ids(COMMANDS))
def test_markers_name_what_is_missing(command):
    if "not run here" in command.comment.lower() and command.marker is None:
        pytest.fail(f"{command}: write the marker exactly as `# [not run here: X]`")
    if command.marker is not None:
        assert command.marker in NOT_RUN_HERE, (
            f"{command}: marker `{command.marker}` is not one of {', '.join(NOT_RUN_HERE)}")
        assert not command.offline, f"{command}: the offline block runs every line; no marker belongs there"


def covering_entries(command: Command) -> list[tuple[str, tuple[str, ...]]]:
    return [(pattern, where) for pattern, where in COVERAGE if re.search(pattern, command.text)]


@pytest.mark.parametrize("command", RUNNABLE, ids=ids(RUNNABLE))
def test_every_runnable_command_is_exercised(command):
    if command.offline:
        return  # test_offline_stages_run_as_written runs it
    entries = covering_entries(command)
    assert entries, (
        f"{command}: nothing runs this command. Add a test that runs it (or a make target CI runs) and map "
        f"it in COVERAGE in tests/test_readme.py, or end the line with `# [not run here: X]`, X one of "
        f"{', '.join(NOT_RUN_HERE)}, if it cannot run on an offline CPU machine")
    for _, where in entries:
        for place in where:
            check_place(command, place)


def check_place(command: Command, place: str) -> None:
    if place == ".ci/run":
        words = shlex.split(command.text)
        assert words[0] == "make", f"{command}: only make targets can be mapped to .ci/run"
        target = make_target(words)
        ci_lines = [line.split("#", 1)[0] for line in CI_SCRIPT.read_text(encoding="utf-8").splitlines()]
        assert any(re.search(rf"(^|\s)make\s+{re.escape(target)}(\s|$)", line) for line in ci_lines), (
            f"{command}: mapped to .ci/run, but .ci/run does not run `make {target}`")
        return
    path, _, name = place.partition("::")
    file = REPO / path
    assert file.is_file(), f"{command}: mapped to {place}, but {path} does not exist"
    names = {node.name for node in ast.parse(file.read_text(encoding="utf-8")).body
             if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    assert name in names, f"{command}: mapped to {place}, but {path} defines no `{name}`"


def test_every_coverage_entry_matches_a_readme_command():
    stale = [pattern for pattern, _ in COVERAGE
             if not any(re.search(pattern, c.text) for c in RUNNABLE if not c.offline)]
    assert not stale, f"COVERAGE entries that match no runnable README command (remove them): {stale}"


def make_target(words: list[str]) -> str:
    targets = [w for w in words[1:] if "=" not in w and not w.startswith("-")]
    assert len(targets) == 1, f"`{' '.join(words)}`: name exactly one make target"
    return targets[0]


MAKE_COMMANDS = [c for c in COMMANDS if c.text.startswith("make ")]


@pytest.mark.parametrize("command", MAKE_COMMANDS, ids=ids(MAKE_COMMANDS))
def test_make_targets_and_variables_exist(command):
    words = shlex.split(command.text)
    target = make_target(words)
    makefile = MAKEFILE.read_text(encoding="utf-8")
    assert re.search(rf"^{re.escape(target)}:", makefile, re.M), f"{command}: the Makefile has no target `{target}`"
    variables = set(re.findall(r"^([A-Z_]+) *[?:]?=", makefile, re.M))
    for assignment in (w for w in words[1:] if "=" in w):
        name = assignment.split("=", 1)[0]
        assert name in variables, f"{command}: the Makefile has no variable `{name}`"
    dry = make_dry_run(command.text)
    assert dry.returncode == 0, f"{command}: `make -n` fails:\n{dry.stderr[-1500:]}"


FLAG_COMMANDS = [c for c in COMMANDS if "--" in c.text or c.text.startswith("make ")]


@pytest.mark.parametrize("command", FLAG_COMMANDS, ids=ids(FLAG_COMMANDS))
def test_every_flag_is_in_the_modules_help(command, prefetch_help):
    found = command_invocations(command)
    if not command.text.startswith("make "):
        assert found or "--" not in command.text, f"{command}: flags, but no `python -m MODULE` to give them to"
    for invocation in found:
        unknown = unknown_flags(invocation)
        assert not unknown, (f"{command}: {', '.join(unknown)} not in "
                             f"`{'torchrun' if invocation.module == 'torchrun' else 'python -m ' + invocation.module}"
                             f" --help`")


def test_make_help_lists_every_target_the_readme_uses():
    done = subprocess.run(["make", "help"], cwd=REPO, env=clean_environment(), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    listed = set(re.findall(r"^\s*make (\S+)", done.stdout, re.M))
    used = {make_target(shlex.split(c.text)) for c in MAKE_COMMANDS}
    assert used <= listed, f"targets the README uses but `make help` does not list: {sorted(used - listed)}"


# --------------------------------------------------------------------------------------------
# Tables: the flags of each module, and the Make variables
# --------------------------------------------------------------------------------------------

def read_tables(text: str) -> list[tuple[str, int, list[str]]]:
    """(what the marker names, README line, the table's lines) for each marked table."""
    lines = text.splitlines()
    tables = []
    for number, line in enumerate(lines):
        marker = TABLE_MARKER.fullmatch(line.strip())
        if not marker:
            continue
        rows = []
        for row in lines[number + 1:]:
            if not row.startswith("|"):
                if rows:
                    break
                assert not row.strip(), f"README.md:{number + 1}: the marker must sit right above its table"
                continue
            rows.append(row)
        tables.append((marker.group(1), number + 1, rows))
    return tables


TABLES = read_tables(README.read_text(encoding="utf-8"))
FLAG_TABLES = [t for t in TABLES if t[0].startswith("flags ")]


def test_there_are_flag_tables_and_a_make_variable_table():
    assert len(FLAG_TABLES) >= 5 and any(t[0] == "make-variables" for t in TABLES)


@pytest.mark.parametrize("table", FLAG_TABLES, ids=[t[0].replace(" ", "-") for t in FLAG_TABLES])
def test_flag_tables_name_real_flags(table, prefetch_help):
    what, line, rows = table
    module = what.removeprefix("flags ")
    flags = [f for row in rows for f in re.findall(r"(?<![\w-])--[a-z][\w-]*", row)]
    assert flags, f"README.md:{line}: a flag table without flags"
    unknown = unknown_flags(Invocation(module, tuple(flags)))
    assert not unknown, f"README.md:{line}: {', '.join(unknown)} not in `python -m {module} --help`"


def test_make_variable_table_matches_the_makefile():
    (_, line, rows), = [t for t in TABLES if t[0] == "make-variables"]
    defaults = dict(re.findall(r"^([A-Z_]+) *\?= *(.*?) *$", MAKEFILE.read_text(encoding="utf-8"), re.M))
    for row in rows[2:]:  # after the header and the |---| line
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        name, default = cells[0].strip("`"), cells[1]
        assert name in defaults, f"README.md:{line}: the Makefile has no `{name} ?=`"
        readme_default = "" if default.startswith("(empty") else default.strip("`")
        assert readme_default == defaults[name], (
            f"README.md:{line}: {name} defaults to `{defaults[name]}` in the Makefile, not `{readme_default}`")
    named = {row.strip("|").split("|")[0].strip().strip("`") for row in rows[2:]}
    assert not set(defaults) - named, f"README.md:{line}: add {sorted(set(defaults) - named)} to the table"


# --------------------------------------------------------------------------------------------
# The offline stage-by-stage block, run as written
# --------------------------------------------------------------------------------------------

def test_offline_stages_run_as_written(tmp_path):
    """Runs the block after OFFLINE_MARKER line by line in a scratch directory that holds only a link
    to the Makefile, with this interpreter's environment as `python` and as the Makefile's VENV, so
    every path the block names (runs/...) lands under tmp_path. Then checks what the README says
    the block writes."""
    block = [c for c in COMMANDS if c.offline]
    (tmp_path / "Makefile").symlink_to(MAKEFILE)
    bin_dir = os.path.dirname(sys.executable)
    env = clean_environment() | {
        "VENV": os.path.dirname(bin_dir),
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "PYTHONPATH": str(REPO),
        "OMP_NUM_THREADS": "1",
    }
    for command in block:
        done = subprocess.run(command.text, shell=True, executable="/bin/bash", cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, f"{command}: exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"

    runs = tmp_path / "runs"
    expected = [
        "crawl/raw/crawl_summary.json",
        "filter/funnel.json", "filter/stats.json", "filter/split/split.json",
        "train/config.json", "train/checkpoints/step-00000060.pt",
        "train/checkpoints/step-00000060.retrieval-test.json",
        "filter/report/index.html",
    ]
    missing = [name for name in expected if not (runs / name).is_file()]
    assert not missing, f"the offline block did not write {missing}"
    for shards in ("crawl/raw", "filter/clean", "filter/rejects", "filter/split/train", "filter/split/test"):
        assert list((runs / shards).glob("part-*.parquet")), f"no shards in runs/{shards}"
    import json

    result = json.loads((runs / "train/checkpoints/step-00000060.retrieval-test.json").read_text(encoding="utf-8"))
    assert set(result["metrics"]) == set(result["chance"]) >= {"i2t_R@1", "t2i_R@1", "MR"}
    assert result["layout"] == "shards" and result["step"] == 60
