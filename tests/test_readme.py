"""README.md and docs/*.md stay true.

Every Markdown file of the documentation (README.md and every docs/*.md, found by glob, so a new
page is checked as soon as it exists) is read the same way. Every command line in their ```bash
blocks (continuations joined, comment-only lines skipped) is either
- marked `# [not run here: X]`, X one of NOT_RUN_HERE, or
- runnable on one offline CPU machine, and then exercised somewhere: by the offline walk-through
  (the one block after OFFLINE_MARKER, run literally), or by a test or CI step named in COVERAGE.

For every command, runnable or marked: a `make TARGET ...` line names a real target and variables
(`make -n` accepts it), and each `--flag` given to a `python -m MODULE` (directly, through torchrun,
or through a Make variable such as TRAIN_ARGS, read from `make -n`) appears in that module's
`--help`; Beam's own pipeline flags are exempt for the Beam jobs. The flag tables and the
Make-variable table (each after a `<!-- readme-test: ... -->` marker, each once in all the files)
are checked against `--help` and the Makefile. Relative links and their #anchors resolve, and every
docs/*.md page that the code names exists.

Each check is a function that returns the problems it finds; the parametrized tests assert there
are none, and test_each_check_catches_a_planted_mistake shows each one failing on a scratch page.
"""

from __future__ import annotations

import ast
import concurrent.futures
import dataclasses
import functools
import json
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
DOCS_DIR = REPO / "docs"
MAKEFILE = REPO / "Makefile"
CI_SCRIPT = REPO / ".ci" / "run"

#: What a command may need that one offline CPU machine lacks.
NOT_RUN_HERE = ("Dataflow", "Flink", "GPU", "internet")
MARKER = re.compile(r"\[not run here: ([^\]]*)\]")
OFFLINE_MARKER = "<!-- readme-test: offline-stages -->"
TABLE_MARKER = re.compile(r"<!-- readme-test: (flags [\w.]+(?: \w+)?|make-variables) -->")
#: Phrases that narrate how the project was built instead of telling a user how to use it.
NARRATION = ("this session", "built concurrently", "in a later session")

#: Where each runnable command outside the offline block is exercised: a regex over the command,
#: and pytest node ids (the file must define the test) or ".ci/run" (it must run the make target).
COVERAGE: list[tuple[str, tuple[str, ...]]] = [
    (r"^make install$", (".ci/run",)),
    (r"^make test(\s|$)", (".ci/run",)),
    (r"^make test-fast$", ("tests/test_architecture.py::test_make_test_fast_runs_every_test_but_the_e2e_tier",)),
    (r"^make test-flink$", ("tests/pipelines/test_crawl_flink.py::test_crawl_of_a_url_list_on_flink_matches_the_in_process_runner",
                            "tests/pipelines/test_filter_flink.py::test_filter_on_flink_matches_the_in_process_runner")),
    (r"^python -m tests\.support\.flink_cluster fetch$",
     ("tests/support/test_flink_cluster.py::test_fetch_prints_a_flink_and_a_job_server_that_java_runs",)),
    (r"^python -m tests\.support\.flink_cluster run --taskmanager-memory \S+ --task-off-heap \S+ -- sh -c "
     r"'\.venv/bin/python -m benchmarks\.filter_scale ",
     ("tests/support/test_flink_cluster.py::test_the_command_line_runs_a_command_against_the_cluster_and_stops_it",
      "tests/benchmarks/test_filter_scale.py::test_cli_times_the_filter_with_beam_flags_and_reports_each_worker")),
    (r"^python -m pipelines\.worker_pool\b",
     ("tests/pipelines/test_worker_pool.py::test_a_pipeline_runs_in_pool_harnesses_with_malloc_tuned",
      "tests/support/test_flink_cluster.py::test_the_cluster_comes_up_with_its_slots_and_stops_leaving_no_process")),
    (r"^python -m pipelines\.crawl --url-list \S+ --output \S+ --runner=FlinkRunner\b",
     ("tests/pipelines/test_crawl_flink.py::test_crawl_of_a_url_list_on_flink_matches_the_in_process_runner",)),
    (r"^python -m pipelines\.filter --input \S+ --output \S+ --runner=FlinkRunner\b",
     ("tests/pipelines/test_filter_flink.py::test_filter_on_flink_matches_the_in_process_runner",)),
    (r"^make demo\b", (".ci/run", "tests/pipelines/test_demo.py::test_shortened_demo_end_to_end")),
    (r"^make help$", ("tests/test_readme.py::test_make_help_lists_every_target_the_docs_use",)),
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
    (r"^python -m benchmarks\.train_name_model$",
     ("tests/benchmarks/test_train_name_model.py::test_the_packaged_model_is_what_the_trainer_writes",)),
    (r"^python -m benchmarks\.train_name_model --cross-validate$",
     ("tests/benchmarks/test_train_name_model.py::test_cross_validation_scores_each_dev_half_without_it",)),
    (r"^python -m benchmarks\.download\b",
     ("tests/pipelines/test_crawl_catalog.py::test_download_benchmark_runs_at_a_tiny_size",)),
    (r"^make bench-text-filters$",
     ("tests/filters/test_benchmark_and_layout.py::test_benchmark_reports_speed_and_agreement",
      "tests/benchmarks/test_benchmarks_smoke.py::test_text_filters_cli_writes_the_readme_fields")),
    (r"^(make bench-train$|python -m benchmarks\.train_throughput\b)",
     ("tests/benchmarks/test_benchmarks_smoke.py::test_train_throughput_cli_writes_the_readme_fields",)),
    (r"^(make bench-crawl-scale$|python -m benchmarks\.crawl_scale\b)",
     ("tests/benchmarks/test_crawl_scale.py::test_the_benchmark_runs_at_a_tiny_size",)),
    (r"^make bench-token-wise$",
     ("tests/benchmarks/test_benchmarks_smoke.py::test_token_wise_memory_cli_writes_the_readme_fields",)),
    (r"^(make bench-filter-scale\b|python -m benchmarks\.filter_scale\b)",
     ("tests/benchmarks/test_filter_scale.py::test_cli_times_the_filter_with_beam_flags_and_reports_each_worker",)),
    (r"^(make bench-methods\b|python -m benchmarks\.methods\b)",
     ("tests/benchmarks/test_benchmarks_smoke.py::test_methods_cli_writes_the_table_fields",)),
]

#: Modules whose first argument is a subcommand with its own --help.
SUBCOMMAND_MODULES = {"training.evaluate", "tests.support.flink_cluster"}
#: Beam jobs: Beam's pipeline flags pass through them.
BEAM_MODULES = {"pipelines.crawl", "pipelines.filter", "pipelines.crawl_local", "benchmarks.filter_scale"}
#: Modules that hand the flags they do not know to another module.
PASSES_FLAGS_TO = {"pipelines.crawl_local": "pipelines.crawl"}
#: Make's path and flag variables: removed from the environment so the docs' defaults hold.
MAKE_ENVIRONMENT = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")
#: Where the code may name a docs page: scanned for `docs/NAME.md`.
CODE_SUFFIXES = (".py", ".cfg", ".toml")
CODE_SKIP_DIRS = {".git", ".venv", "runs", "__pycache__", "docs", "node_modules"}


# --------------------------------------------------------------------------------------------
# Reading the documentation
# --------------------------------------------------------------------------------------------

def doc_paths() -> list[Path]:
    """README.md and every docs/*.md, in a stable order."""
    return [README, *sorted(DOCS_DIR.glob("*.md"))]


def relative(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


#: path relative to the repository -> text, for every documentation file.
DOCS: dict[str, str] = {relative(p): p.read_text(encoding="utf-8") for p in doc_paths()}


@dataclasses.dataclass(frozen=True)
class Command:
    text: str  # the command, continuations joined, without its trailing comment
    comment: str  # the trailing comment, "" if none
    path: str  # the file, relative to the repository
    line: int  # line where it starts
    offline: bool  # in the offline stage-by-stage block

    @property
    def marker(self) -> str | None:
        found = MARKER.search(self.comment)
        return found.group(1) if found else None

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.text}"


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


def read_commands(text: str, path: str) -> list[Command]:
    """Every command line of the ```bash blocks of one file."""
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
            assert not pending, f"{path}:{start}: a bash block ends inside a continued line"
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
            commands.append(Command(" ".join(command.split()), comment, path, start, offline))
    assert not in_block, f"{path}: a ```bash block is not closed"
    return commands


COMMANDS = [c for path, text in DOCS.items() for c in read_commands(text, path)]
RUNNABLE = [c for c in COMMANDS if c.marker is None]


def ids(commands: list[Command]) -> list[str]:
    return [f"{c.path}-L{c.line}" for c in commands]


@dataclasses.dataclass(frozen=True)
class Table:
    what: str  # what the marker names: "flags MODULE [SUB]" or "make-variables"
    path: str
    line: int  # the marker's line
    rows: tuple[str, ...]  # the table's lines, header and |---| included

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


def read_tables(text: str, path: str) -> list[Table]:
    """Each marked table of one file."""
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
                assert not row.strip(), f"{path}:{number + 1}: the marker must sit right above its table"
                continue
            rows.append(row)
        tables.append(Table(marker.group(1), path, number + 1, tuple(rows)))
    return tables


TABLES = [t for path, text in DOCS.items() for t in read_tables(text, path)]
FLAG_TABLES = [t for t in TABLES if t.what.startswith("flags ")]


# --------------------------------------------------------------------------------------------
# Running things (cached per session)
# --------------------------------------------------------------------------------------------

def clean_environment() -> dict[str, str]:
    """The environment without Make's own variables or the Makefile's, so a `make test` with
    overrides does not leak them into the documented commands."""
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
    """Ask every module the docs name for its --help at once (each takes seconds to import)."""
    modules = {i.module for c in COMMANDS for i in (_safe(command_invocations, c) or ()) if i.flags}
    modules |= {t.what.removeprefix("flags ") for t in FLAG_TABLES}
    modules |= {m for m in (PASSES_FLAGS_TO.get(m) for m in list(modules)) if m}
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda m: _safe(module_help, m), sorted(modules)))


def _safe(function, *args):
    try:
        return function(*args)
    except AssertionError:  # reported by the test that needs it
        return None


# --------------------------------------------------------------------------------------------
# The checks: each returns the problems it finds
# --------------------------------------------------------------------------------------------

def marker_problems(command: Command) -> list[str]:
    if "not run here" in command.comment.lower() and command.marker is None:
        return [f"{command}: write the marker exactly as `# [not run here: X]`"]
    if command.marker is None:
        return []
    if command.marker not in NOT_RUN_HERE:
        return [f"{command}: marker `{command.marker}` is not one of {', '.join(NOT_RUN_HERE)}"]
    if command.offline:
        return [f"{command}: the offline block runs every line; no marker belongs there"]
    return []


def covering_entries(command: Command) -> list[tuple[str, tuple[str, ...]]]:
    return [(pattern, where) for pattern, where in COVERAGE if re.search(pattern, command.text)]


def coverage_problems(command: Command) -> list[str]:
    if command.marker is not None or command.offline:
        return []  # marked, or run by test_offline_stages_run_as_written
    entries = covering_entries(command)
    if not entries:
        return [f"{command}: nothing runs this command. Add a test that runs it (or a make target CI runs) and "
                f"map it in COVERAGE in tests/test_readme.py, or end the line with `# [not run here: X]`, X one "
                f"of {', '.join(NOT_RUN_HERE)}, if it cannot run on an offline CPU machine"]
    return [problem for _, where in entries for place in where for problem in place_problems(command, place)]


def place_problems(command: Command, place: str) -> list[str]:
    if place == ".ci/run":
        words = shlex.split(command.text)
        if words[0] != "make":
            return [f"{command}: only make targets can be mapped to .ci/run"]
        target = make_target(words)
        ci_lines = [line.split("#", 1)[0] for line in CI_SCRIPT.read_text(encoding="utf-8").splitlines()]
        if not any(re.search(rf"(^|\s)make\s+{re.escape(target)}(\s|$)", line) for line in ci_lines):
            return [f"{command}: mapped to .ci/run, but .ci/run does not run `make {target}`"]
        return []
    path, _, name = place.partition("::")
    file = REPO / path
    if not file.is_file():
        return [f"{command}: mapped to {place}, but {path} does not exist"]
    names = {node.name for node in ast.parse(file.read_text(encoding="utf-8")).body
             if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    return [] if name in names else [f"{command}: mapped to {place}, but {path} defines no `{name}`"]


def make_target(words: list[str]) -> str:
    targets = [w for w in words[1:] if "=" not in w and not w.startswith("-")]
    assert len(targets) == 1, f"`{' '.join(words)}`: name exactly one make target"
    return targets[0]


def make_problems(command: Command) -> list[str]:
    """The target and the variables exist, and `make -n` accepts the line."""
    words = shlex.split(command.text)
    target = make_target(words)
    makefile = MAKEFILE.read_text(encoding="utf-8")
    if not re.search(rf"^{re.escape(target)}:", makefile, re.M):
        return [f"{command}: the Makefile has no target `{target}`"]
    variables = set(re.findall(r"^([A-Z_]+) *[?:]?=", makefile, re.M))
    problems = [f"{command}: the Makefile has no variable `{name}`"
                for name in (w.split("=", 1)[0] for w in words[1:] if "=" in w) if name not in variables]
    if problems:
        return problems
    dry = make_dry_run(command.text)
    return [] if dry.returncode == 0 else [f"{command}: `make -n` fails:\n{dry.stderr[-1500:]}"]


def flag_problems(command: Command) -> list[str]:
    """Every flag of the command is in the --help of the module it reaches."""
    found = command_invocations(command)
    if not command.text.startswith("make ") and not found and "--" in command.text:
        return [f"{command}: flags, but no `python -m MODULE` to give them to"]
    problems = []
    for invocation in found:
        unknown = unknown_flags(invocation)
        if unknown:
            runs = "torchrun" if invocation.module == "torchrun" else "python -m " + invocation.module
            problems.append(f"{command}: {', '.join(unknown)} not in `{runs} --help`")
    return problems


def table_flag_problems(table: Table) -> list[str]:
    module = table.what.removeprefix("flags ")
    flags = [f for row in table.rows for f in re.findall(r"(?<![\w-])--[a-z][\w-]*", row)]
    if not flags:
        return [f"{table}: a flag table without flags"]
    unknown = unknown_flags(Invocation(module, tuple(flags)))
    return [f"{table}: {', '.join(unknown)} not in `python -m {module} --help`"] if unknown else []


def make_variable_table_problems(table: Table, makefile: str) -> list[str]:
    defaults = dict(re.findall(r"^([A-Z_]+) *\?= *(.*?) *$", makefile, re.M))
    problems = []
    named = set()
    for row in table.rows[2:]:  # after the header and the |---| line
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        name, default = cells[0].strip("`"), cells[1]
        named.add(name)
        if name not in defaults:
            problems.append(f"{table}: the Makefile has no `{name} ?=`")
            continue
        documented = "" if default.startswith("(empty") else default.strip("`")
        if documented != defaults[name]:
            problems.append(f"{table}: {name} defaults to `{defaults[name]}` in the Makefile, not `{documented}`")
    if set(defaults) - named:
        problems.append(f"{table}: add {sorted(set(defaults) - named)} to the table")
    return problems


def duplicate_table_problems(tables: list[Table]) -> list[str]:
    """Each flag table, and the Make-variable table, lives in one place only."""
    places: dict[str, list[str]] = {}
    for table in tables:
        places.setdefault(table.what, []).append(str(table))
    return [f"`{what}` is documented {len(where)} times ({', '.join(where)}); keep one and link to it"
            for what, where in places.items() if len(where) > 1]


# --- links --------------------------------------------------------------------------------------

LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]+)\)")


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, with inline code spans removed."""
    out, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            out.append((number, re.sub(r"`[^`]*`", "", line)))
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text lower-cased, punctuation dropped, spaces to hyphens."""
    text = LINK.sub(r"\1", heading).replace("`", "").replace("*", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of a Markdown file's headings (a repeated heading gets -1, -2, ... as on GitHub)."""
    found: set[str] = set()
    repeats: dict[str, int] = {}
    fenced = False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            fenced = not fenced
            continue
        heading = None if fenced else re.match(r"^#{1,6}\s+(.*?)\s*$", line)
        if heading:
            base = slug(heading.group(1))
            found.add(f"{base}-{repeats[base]}" if base in repeats else base)
            repeats[base] = repeats.get(base, 0) + 1
    return found


def link_problems(path: str, text: str, docs: dict[str, str]) -> list[str]:
    """Relative links resolve to a file or folder of the repository, and #anchors to a heading of
    the Markdown file they name."""
    problems = []
    for number, line in prose_lines(text):
        for _, target in LINK.findall(line):
            if re.match(r"^[a-z]+:", target):  # https:, mailto:
                continue
            file, _, anchor = target.partition("#")
            resolved = (REPO / path).parent / file if file else REPO / path
            key = relative(resolved.resolve()) if resolved.resolve().is_relative_to(REPO) else None
            if key is None or not resolved.exists():
                problems.append(f"{path}:{number}: the link `{target}` names no file of the repository")
                continue
            if anchor and key.endswith(".md"):
                headings = anchors(docs[key] if key in docs else resolved.read_text(encoding="utf-8"))
                if anchor not in headings:
                    problems.append(f"{path}:{number}: `{target}`: {key} has no heading with the anchor #{anchor}")
    return problems


def code_reference_problems(source: str, text: str, docs: dict[str, str]) -> list[str]:
    """Every `docs/NAME.md` the code names exists, and a quoted section after it
    (`docs/design.md: "Which reason a drop gets"`) is in that page."""
    problems = []
    for match in re.finditer(r"docs/([\w-]+\.md)(?:[:,]? \"([^\"]+)\")?", text):
        page = f"docs/{match.group(1)}"
        if page not in docs:
            problems.append(f"{source}: names {page}, which does not exist")
        elif match.group(2) and match.group(2) not in docs[page]:
            problems.append(f"{source}: names the section \"{match.group(2)}\" of {page}, which has none")
    return problems


def code_files() -> list[Path]:
    files = []
    for root, dirs, names in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in CODE_SKIP_DIRS and not d.startswith(".")]
        files += [Path(root) / n for n in names if n.endswith(CODE_SUFFIXES) or n == "Makefile"]
    files.append(CI_SCRIPT)
    return sorted(f for f in files if f.resolve() != Path(__file__).resolve())


def narration_problems(path: str, text: str) -> list[str]:
    return [f"{path}:{number}: `{phrase}` narrates the project's history; write for a user"
            for number, line in enumerate(text.splitlines(), 1)
            for phrase in NARRATION if phrase in line.lower()]


# --------------------------------------------------------------------------------------------
# The documentation as a whole
# --------------------------------------------------------------------------------------------

def test_the_docs_have_commands_tables_and_one_offline_block():
    assert len(DOCS) > 1 and "README.md" in DOCS, f"docs/*.md not found under {DOCS_DIR}"
    assert len(COMMANDS) > 20
    assert any(c.marker for c in COMMANDS)
    offline_files = {c.path for c in COMMANDS if c.offline}
    assert len(offline_files) == 1, f"exactly one ```bash block right after {OFFLINE_MARKER}; found in {offline_files}"
    assert len([c for c in COMMANDS if c.offline]) >= 5
    assert sum(line.strip() == OFFLINE_MARKER for text in DOCS.values() for line in text.splitlines()) == 1
    assert len(FLAG_TABLES) >= 5 and any(t.what == "make-variables" for t in TABLES)


def test_each_table_is_documented_once():
    assert not duplicate_table_problems(TABLES)


@pytest.mark.parametrize("path", list(DOCS))
def test_links_resolve(path):
    problems = link_problems(path, DOCS[path], DOCS)
    assert not problems, "\n".join(problems)


def test_every_docs_page_the_code_names_exists():
    problems = [p for file in code_files()
                for p in code_reference_problems(relative(file), file.read_text(encoding="utf-8"), DOCS)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", list(DOCS))
def test_the_docs_do_not_narrate_history(path):
    problems = narration_problems(path, DOCS[path])
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------------------------
# Commands: markers, coverage, targets, flags
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", COMMANDS, ids=ids(COMMANDS))
def test_markers_name_what_is_missing(command):
    problems = marker_problems(command)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("command", RUNNABLE, ids=ids(RUNNABLE))
def test_every_runnable_command_is_exercised(command):
    problems = coverage_problems(command)
    assert not problems, "\n".join(problems)


def test_every_coverage_entry_matches_a_documented_command():
    stale = [pattern for pattern, _ in COVERAGE
             if not any(re.search(pattern, c.text) for c in RUNNABLE if not c.offline)]
    assert not stale, f"COVERAGE entries that match no runnable documented command (remove them): {stale}"


MAKE_COMMANDS = [c for c in COMMANDS if c.text.startswith("make ")]


@pytest.mark.parametrize("command", MAKE_COMMANDS, ids=ids(MAKE_COMMANDS))
def test_make_targets_and_variables_exist(command):
    problems = make_problems(command)
    assert not problems, "\n".join(problems)


FLAG_COMMANDS = [c for c in COMMANDS if "--" in c.text or c.text.startswith("make ")]


@pytest.mark.parametrize("command", FLAG_COMMANDS, ids=ids(FLAG_COMMANDS))
def test_every_flag_is_in_the_modules_help(command, prefetch_help):
    problems = flag_problems(command)
    assert not problems, "\n".join(problems)


def test_make_help_lists_every_target_the_docs_use():
    done = subprocess.run(["make", "help"], cwd=REPO, env=clean_environment(), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    listed = set(re.findall(r"^\s*make (\S+)", done.stdout, re.M))
    used = {make_target(shlex.split(c.text)) for c in MAKE_COMMANDS}
    assert used <= listed, f"targets the docs use but `make help` does not list: {sorted(used - listed)}"


# --------------------------------------------------------------------------------------------
# Tables: the flags of each module, and the Make variables
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("table", FLAG_TABLES, ids=[t.what.replace(" ", "-") for t in FLAG_TABLES])
def test_flag_tables_name_real_flags(table, prefetch_help):
    problems = table_flag_problems(table)
    assert not problems, "\n".join(problems)


def test_make_variable_table_matches_the_makefile():
    table, = [t for t in TABLES if t.what == "make-variables"]
    problems = make_variable_table_problems(table, MAKEFILE.read_text(encoding="utf-8"))
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------------------------
# Each check can fail: mistakes planted in scratch pages
# --------------------------------------------------------------------------------------------

def _commands(block: str) -> list[Command]:
    return read_commands(f"```bash\n{block}\n```\n", "scratch.md")


def _table(text: str) -> Table:
    table, = read_tables(text, "scratch.md")
    return table


SPLIT_TABLE = "<!-- readme-test: flags pipelines.split -->\n| flag | default |\n|---|---|\n"
VARIABLE_TABLE = "<!-- readme-test: make-variables -->\n| variable | default | used by |\n|---|---|---|\n"

#: A mistake planted in a scratch page -> (what the check must say about it, the check run on it).
PLANTED = {
    "marker not in the vocabulary": (
        "`moon` is not one of",
        lambda: marker_problems(_commands("make crawl  # [not run here: moon]")[0])),
    "marker misspelt": (
        "write the marker exactly",
        lambda: marker_problems(_commands("make crawl  # not run here: GPU")[0])),
    "marker in the offline block": (
        "no marker belongs there",
        lambda: marker_problems(read_commands(
            f"{OFFLINE_MARKER}\n```bash\nmake filter  # [not run here: GPU]\n```\n", "scratch.md")[0])),
    "command nothing runs": (
        "nothing runs this command",
        lambda: coverage_problems(_commands("python -m pipelines.split --input a --output b")[0])),
    "coverage names a missing test": (
        "defines no `test_that_does_not_exist`",
        lambda: place_problems(_commands("make help")[0], "tests/test_readme.py::test_that_does_not_exist")),
    "coverage names a target CI does not run": (
        "does not run `make report`",
        lambda: place_problems(_commands("make report")[0], ".ci/run")),
    "make target that does not exist": (
        "no target `no-such-target`",
        lambda: make_problems(_commands("make no-such-target")[0])),
    "make variable that does not exist": (
        "no variable `NO_SUCH_VARIABLE`",
        lambda: make_problems(_commands("make filter NO_SUCH_VARIABLE=1")[0])),
    "flag the module lacks": (
        "--no-such-flag not in `python -m pipelines.split --help`",
        lambda: flag_problems(_commands("python -m pipelines.split --no-such-flag 1")[0])),
    "flag the module lacks, through a Make variable": (
        "--no-such-flag not in `python -m pipelines.filter --help`",
        lambda: flag_problems(_commands('make filter FILTER_ARGS="--no-such-flag"')[0])),
    "flag of another subcommand": (
        "--layout not in `python -m training.evaluate zeroshot --help`",
        lambda: flag_problems(_commands("python -m training.evaluate zeroshot --layout shards")[0])),
    "Beam flag on a job that is not Beam": (
        "--runner not in `python -m pipelines.split --help`",
        lambda: flag_problems(_commands("python -m pipelines.split --runner=DataflowRunner")[0])),
    "flag table with a flag the module lacks": (
        "--no-such-flag not in `python -m pipelines.split --help`",
        lambda: table_flag_problems(_table(SPLIT_TABLE + "| `--no-such-flag` | 1 |\n"))),
    "Make-variable table with a wrong default": (
        "CRAWL_OUT defaults to `runs/crawl/raw` in the Makefile, not `runs/elsewhere`",
        lambda: make_variable_table_problems(_table(VARIABLE_TABLE + "| `CRAWL_OUT` | `runs/elsewhere` | |\n"),
                                             MAKEFILE.read_text(encoding="utf-8"))),
    "Make-variable table that misses a variable": (
        "'CACHE_ARGS', 'CACHE_OUTPUT'",
        lambda: make_variable_table_problems(_table(VARIABLE_TABLE + "| `CRAWL_OUT` | `runs/crawl/raw` | |\n"),
                                             MAKEFILE.read_text(encoding="utf-8"))),
    "table documented twice": (
        "`flags pipelines.split` is documented 2 times",
        lambda: duplicate_table_problems(read_tables(
            SPLIT_TABLE + "| `--seed` | 0 |\n\n" + SPLIT_TABLE + "| `--seed` | 0 |\n", "scratch.md"))),
    "link to a missing page": (
        "`no-such-page.md` names no file",
        lambda: link_problems("docs/scratch.md", "See [it](no-such-page.md).", DOCS)),
    "link to a missing heading": (
        "no heading with the anchor #no-such-heading",
        lambda: link_problems("docs/scratch.md", "See [it](design.md#no-such-heading).", DOCS)),
    "code names a missing page": (
        "names docs/no-such-page.md, which does not exist",
        lambda: code_reference_problems("scratch.py", "see docs/" + "no-such-page.md", DOCS)),
    "code names a missing section": (
        '"No such section" of docs/design.md',
        lambda: code_reference_problems("scratch.py", 'see docs/design.md: "No such section"', DOCS)),
    "narration": (
        "`this session` narrates",
        lambda: narration_problems("scratch.md", "In this session we added a flag.")),
}


@pytest.mark.parametrize("check", list(PLANTED))
def test_each_check_catches_a_planted_mistake(check, prefetch_help):
    expected, run_check = PLANTED[check]
    problems = run_check()
    assert any(expected in problem for problem in problems), (
        f"the check did not catch: {check} (expected a problem saying {expected!r}, got {problems})")


def test_the_checks_pass_a_correct_scratch_page(prefetch_help):
    """The other side of the planted mistakes: the same checks on correct lines find nothing."""
    command, = _commands('make filter FILTER_ARGS="--dedup-images"')
    assert not marker_problems(command) and not make_problems(command) and not flag_problems(command)
    assert not link_problems("docs/scratch.md", "See [the rules](design.md#the-papers-rules-exactly).", DOCS)
    assert not table_flag_problems(_table(SPLIT_TABLE + "| `--seed` | 0 |\n"))


# --------------------------------------------------------------------------------------------
# The offline stage-by-stage block, run as written
# --------------------------------------------------------------------------------------------

@pytest.mark.timeout(1500)  # eight stages one after another; a loaded machine needs the margin
def test_offline_stages_run_as_written(tmp_path):
    """Runs the block after OFFLINE_MARKER line by line in a scratch directory that holds only a link
    to the Makefile, with this interpreter's environment as `python` and as the Makefile's VENV, so
    every path the block names (runs/...) lands under tmp_path. Then checks what the docs say the
    block writes."""
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
                              capture_output=True, text=True, timeout=600)
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

    result = json.loads((runs / "train/checkpoints/step-00000060.retrieval-test.json").read_text(encoding="utf-8"))
    assert set(result["metrics"]) == set(result["chance"]) >= {"i2t_R@1", "t2i_R@1", "MR"}
    assert result["layout"] == "shards" and result["step"] == 60
