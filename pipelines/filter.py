"""The filter stage as a Beam job: raw shards -> clean shards, reject shards, funnel.json,
stats.json and a word cloud.

    python -m pipelines.filter --input runs/crawl/raw --output runs/filter [Beam flags]

The steps, in the paper's order (docs/design.md):

1. A bytes-free projection of every raw shard (URL key, position, normalised caption of each
   successful download; Parquet reads only those columns) is tallied in the shard, one tally per
   URL, then grouped by URL: the first position wins, and each shard the URL occurs in gets
   a fact "URL u: your row r wins" or "URL u: an earlier shard wins". The winners' captions (and
   those of successes without a URL, never counted) are counted per (caption, shard), then
   grouped by caption: each shard holding a caption seen more than 10 times gets a fact "caption
   c: count n". A group holds one small tally per shard its key occurs in, never the key's rows.
   The facts are keyed by shard and joined with the pending shards (CoGroupByKey), so each
   shard's worker receives its own shard's facts and nothing else: no side input, no worker state
   that grows with the corpus. The records, with their image bytes, never go through a shuffle.
2. Each pending raw shard, with its facts, goes to one DoFn (`FilterShard`) that streams its
   records through the rules in order (failed download, duplicate URL, image size and aspect,
   full decode, then the text rules: length, meaningless, frequency, names, sensitive): the facts
   only answer the rules' corpus questions, the reason is still the first rule that fails. It
   counts a Beam counter per drop reason and writes `rejects/part-NNNNN` and `clean/part-NNNNN`
   as it goes, atomically, rows in input order. A worker holds one batch of image bytes at a time.
3. Optionally (`--dedup-images`) later copies of identical image bytes among the kept pairs are
   dropped too: the rules run once more for the kept pairs' sha256, tallied per shard
   (`KeptImages`), which become "image s: your row r wins" facts the same way.
4. A rerun skips shards whose two outputs exist, so a job killed midway resumes without losing or
   doubling a row.
5. funnel.json and stats.json are computed from the output shards themselves (not from Beam
   metrics), so they are the same on every runner and after a resume; the word cloud is drawn
   from stats.json by the launching process.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import hashlib
import importlib.resources
import json
import os
import sys
import textwrap
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.pvalue import AsSingleton

from filters import contract
from filters.contract import CLEAN_DIR, FUNNEL_FILE, REJECT_DIR, STATS_FILE, WORD_CLOUD_FILE
from filters.contract.flags import add_flags, config_values
from filters.image import ImageConfig
from filters.text import TextConfig, is_frequent, normalise_caption
from pipelines.beam_options import RUNNER_HELP, pipeline_options
from pipelines.filter_records import (
    CAPTION_COUNT,
    IMAGE_WINNER,
    NOT_IN_THIS_SHARD,
    URL_WINNER,
    Fact,
    FilterConfig,
    RecordRules,
    ShardFacts,
    caption_as_found,
    strip_position,
    url_identity,
)
from pipelines.stats import CaptionStats, FontNotFound, draw_word_cloud

MANIFEST_FILE = "_filter_manifest.json"
COUNTER_NAMESPACE = "filters"
_PROJECTION_COLUMNS = ["url", "status", "caption", "caption_raw"]


class FilterInputError(ValueError):
    """The input or output directory cannot be used (no shards, or outputs of another run)."""


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def shard_tallies(shard: tuple[int, str]):
    """A raw shard's successful downloads, read without the image column, tallied in the shard:
    (URL key, (shard, occurrences, first row, that row's normalised caption)) for each URL (main
    output), and ((caption, shard), 0) for each caption of a success without a URL (tagged
    "uncounted"). The tallies hold one entry per distinct key of the shard."""
    index, path = shard
    urls: dict[str, list] = {}
    uncounted: set[str] = set()
    row = 0
    for batch in contract.iter_shard_batches(path, contract.RAW_SCHEMA, columns=_PROJECTION_COLUMNS,
                                           batch_size=4096):
        for record in batch.to_pylist():
            if record["status"] == contract.DownloadStatus.SUCCESS:
                caption = normalise_caption(caption_as_found(record))
                if record["url"]:
                    tally = urls.setdefault(url_identity(record), [0, row, caption])
                    tally[0] += 1
                else:
                    uncounted.add(caption)
            row += 1
    for url, (count, first, caption) in urls.items():
        yield url, (index, count, first, caption)
    for caption in uncounted:
        yield beam.pvalue.TaggedOutput("uncounted", ((caption, index), 0))


def read_records(shard: tuple[int, str]) -> Iterator[dict]:
    """Every row of a raw shard as a dict, with its position (`_shard`, `_row`)."""
    index, path = shard
    row = 0
    for batch in contract.iter_shard_batches(path, contract.RAW_SCHEMA, columns=contract.RAW_SCHEMA.names):
        for record in batch.to_pylist():
            record["_shard"], record["_row"] = index, row
            row += 1
            yield record


def first_occurrence(in_shards: Iterable[tuple[int, int, int, Any]]) -> tuple[int, int, Any, int]:
    """A key's per-shard tallies -> (shard, row, value) of its first occurrence, and its count."""
    total, first = 0, None
    for shard, count, row, value in in_shards:
        total += count
        if first is None or (shard, row) < first[:2]:
            first = (shard, row, value)
    return (*first, total)


def winner_facts(fact: str, key: Any, in_shards: Iterable, first_shard: int, first_row: int):
    """(shard, (fact, key, winner row or NOT_IN_THIS_SHARD)) for every shard the key occurs in."""
    for shard, _, _, _ in in_shards:
        yield shard, (fact, key, first_row if shard == first_shard else NOT_IN_THIS_SHARD)


def url_winners(item: tuple[str, Iterable[tuple[int, int, int, str]]]):
    """One URL's per-shard tallies of successful downloads -> ((its first one's caption, that
    shard), 1), to be counted (main output), and, when the URL repeats, a URL_WINNER fact for each
    shard it occurs in (tagged "facts")."""
    url, in_shards = item
    first_shard, first_row, caption, total = first_occurrence(in_shards)
    yield (caption, first_shard), 1
    if total > 1:
        for fact in winner_facts(URL_WINNER, url, in_shards, first_shard, first_row):
            yield beam.pvalue.TaggedOutput("facts", fact)


def count_in_shard(item: tuple[tuple[str, int], Iterable[int]]) -> tuple[str, tuple[int, int]]:
    """((caption, shard), its 1s and 0s) -> (caption, (shard, how many are counted))."""
    (caption, shard), counted = item
    return caption, (shard, sum(counted))


@dataclasses.dataclass(frozen=True)
class FrequentCaptionFacts:
    """One caption's per-shard counts -> a CAPTION_COUNT fact for each shard it occurs in, when
    the corpus count fails rule 3."""

    config: TextConfig

    def __call__(self, item: tuple[str, Iterable[tuple[int, int]]]) -> Iterator[tuple[int, Fact]]:
        caption, in_shards = item
        total = sum(count for _, count in in_shards)
        if is_frequent(total, self.config):
            for shard, _ in in_shards:
                yield shard, (CAPTION_COUNT, caption, total)


def image_winners(item: tuple[Any, Iterable[tuple[int, int, int, None]]]) -> Iterator[tuple[int, Fact]]:
    """One sha256's per-shard tallies of kept pairs -> when it repeats, an IMAGE_WINNER fact for
    each shard it occurs in."""
    sha, in_shards = item
    first_shard, first_row, _, total = first_occurrence(in_shards)
    if total > 1:
        yield from winner_facts(IMAGE_WINNER, sha, in_shards, first_shard, first_row)


class CorpusFacts(beam.PTransform):
    """Raw shards -> (shard index, (fact, key, value)): for each shard, the winner of every
    repeated URL it holds and the count of every frequent caption it holds.

    Each shard's bytes-free projection is tallied in the shard (one entry per URL); grouped by
    URL, a group holds one tally per shard the URL occurs in, never its rows. The winners'
    captions are grouped per (caption, shard), counted, then grouped by caption, the same way.
    GroupByKey, not CombinePerKey: a combiner's pre-aggregation table in the worker holds up to
    100,000 keys of a bundle (1,000,000 for `sum`), and the in-process runner's bundles grow with
    the corpus. The facts are keyed by shard, so each shard's worker gets its own and no
    worker holds an index of the corpus."""

    def __init__(self, config: FilterConfig):
        super().__init__()
        self.config = config

    def expand(self, shards):
        tallies = shards | "ShardTallies" >> beam.FlatMap(shard_tallies).with_outputs("uncounted", main="urls")
        per_url = (tallies.urls
                   | "GroupByUrl" >> beam.GroupByKey()
                   | "UrlWinners" >> beam.FlatMap(url_winners).with_outputs("facts", main="captions"))
        caption_facts = (
            (per_url.captions, tallies.uncounted)
            | "CaptionsInShards" >> beam.Flatten()
            | "GroupByCaptionInShard" >> beam.GroupByKey()
            | "CountInShard" >> beam.Map(count_in_shard)
            | "GroupByCaption" >> beam.GroupByKey()
            | "FrequentCaptions" >> beam.FlatMap(FrequentCaptionFacts(self.config.text)))
        return (per_url.facts, caption_facts) | "AllFacts" >> beam.Flatten()


class ImageFacts(beam.PTransform):
    """(sha256, (shard, count, first row, None)) tallies of kept pairs, one per image and shard ->
    (shard index, IMAGE_WINNER fact), the same way."""

    def expand(self, tallies):
        return (tallies
                | "GroupByImage" >> beam.GroupByKey()
                | "ImageWinners" >> beam.FlatMap(image_winners))


def tally_images(shas: Iterable[tuple[Any, int]], index: int) -> Iterator[tuple[Any, tuple[int, int, int, None]]]:
    """(sha256, row) of one shard's kept pairs -> (sha256, (shard, count, first row, None))."""
    tallies: dict[Any, list[int]] = {}
    for sha, row in shas:
        tally = tallies.setdefault(sha, [0, row])
        tally[0] += 1
    for sha, (count, first) in tallies.items():
        yield sha, (index, count, first, None)


def shard_work(item: tuple[int, Mapping[str, Iterable]]) -> Iterator[tuple[int, str, list[Fact]]]:
    """A joined shard -> (index, path, its facts); facts of shards not pending are dropped here."""
    index, joined = item
    for path in joined["shard"]:
        yield index, path, list(joined["facts"])


class JoinFacts(beam.PTransform):
    """(index, path) of the pending shards + facts keyed by shard -> (index, path, facts), one
    element per pending shard: the facts reach the shard through a shuffle keyed by shard."""

    def __init__(self, facts):
        super().__init__()
        self.facts = facts

    def expand(self, shards):
        return ({"shard": shards, "facts": self.facts}
                | "CoGroupByShard" >> beam.CoGroupByKey()
                | "ShardWork" >> beam.FlatMap(shard_work))


# --------------------------------------------------------------------------------------------
# Filtering a shard
# --------------------------------------------------------------------------------------------


def finished_kept_images(shard: tuple[int, str]) -> Iterator[tuple[str, tuple[int, int, int, None]]]:
    """The image tallies of the pairs a shard finished in an earlier run kept, read from its clean
    shard's sha256 column alone (no image bytes). The row is the clean shard's: a finished shard
    holds one copy of an image at most, so only the shard's place in the corpus order matters when
    its copy meets one of a pending shard."""
    index, clean_path = shard
    shas = contract.read_shard(clean_path, contract.CLEAN_SCHEMA, columns=["sha256"]).column("sha256").to_pylist()
    yield from tally_images(((sha, row) for row, sha in enumerate(shas) if sha), index)


class _ShardRules(beam.DoFn):
    """Base of the DoFns that run the paper's rules over one raw shard at a time.

    The rule set (segmenter, name masker, Aho-Corasick automaton: heavy and not picklable) is
    built in `setup()`, on the worker. A shard's records are streamed batch by batch, so a worker
    holds one batch of image bytes at a time, and the records never go through a shuffle; the
    only corpus state it holds is the shard's own facts.
    """

    def __init__(self, config: FilterConfig):
        self.config = config
        self._rules: RecordRules | None = None

    def setup(self):
        self._rules = RecordRules(self.config)

    def verdicts(self, index: int, path: str, facts: Iterable[Fact]) -> Iterator[tuple[str | None, dict]]:
        """(drop reason or None, record out) for every row of the shard, in order."""
        shard_facts = ShardFacts(facts)
        for record in read_records((index, path)):
            yield self._rules.check(record, shard_facts)


class KeptImages(_ShardRules):
    """The image tallies (sha256, (shard, count, first row, None)) of the pairs the paper's rules
    keep in one shard: the bytes-free input of the optional exact image de-duplication, which
    applies among kept pairs."""

    def process(self, work):
        kept = ((out["sha256"], out["_row"]) for reason, out in self.verdicts(*work) if reason is None)
        yield from tally_images(kept, work[0])


class FilterShard(_ShardRules):
    """Filter one raw shard, given as (index, path, its corpus facts), and write its reject and
    clean shards, streaming, each atomically, under the raw shard's name, rows in input order;
    yields the shard's index.

    A Beam counter per drop reason (namespace "filters", plus "kept"). Both writers stay open
    until the shard is done, and the rejects are renamed first: a shard counts as done only when
    its clean output exists, so a kill at any point leaves it pending, never half-written.
    """

    def __init__(self, config: FilterConfig, output: str, batch_rows: int = 256):
        super().__init__(config)
        self.output, self.batch_rows = output, batch_rows
        self._counters: dict[str, Any] = {}

    def _count(self, name: str, n: int) -> None:
        counter = self._counters.get(name)
        if counter is None:
            counter = self._counters[name] = Metrics.counter(COUNTER_NAMESPACE, name)
        counter.inc(n)

    def process(self, work):
        index, path, facts = work
        name = output_name(path)
        counts: collections.Counter = collections.Counter()
        buffers: dict[str, list[dict]] = {"clean": [], "rejects": []}
        with contract.ShardWriter(contract.join(self.output, CLEAN_DIR, name), contract.CLEAN_SCHEMA) as clean_writer, \
                contract.ShardWriter(contract.join(self.output, REJECT_DIR, name), contract.REJECT_SCHEMA) as reject_writer:
            writers = {"clean": clean_writer, "rejects": reject_writer}
            for reason, out in self.verdicts(index, path, facts):
                kind = "clean" if reason is None else "rejects"
                counts[reason or "kept"] += 1
                buffers[kind].append(strip_position(out))
                if len(buffers[kind]) >= self.batch_rows:
                    writers[kind].write_records(buffers[kind])
                    buffers[kind] = []
            for kind, rows in buffers.items():
                writers[kind].write_records(rows)
        for reason, n in counts.items():
            self._count(reason, n)
        print(f"filter: {name}: {counts['kept']} kept, {sum(counts.values()) - counts['kept']} rejected",
              file=sys.stderr, flush=True)
        yield index


# --------------------------------------------------------------------------------------------
# Funnel and statistics, from the outputs
# --------------------------------------------------------------------------------------------


def output_name(raw_path: str) -> str:
    """The name of a raw shard's clean and reject outputs: the raw shard's own file name."""
    return raw_path.rstrip("/").rsplit("/", 1)[-1]


def output_shards(output: str, names: Iterable[str]) -> Iterator[tuple[str, str]]:
    """("clean"|"rejects", path) of every output shard."""
    for name in names:
        yield "rejects", contract.join(output, REJECT_DIR, name)
        yield "clean", contract.join(output, CLEAN_DIR, name)


def count_outputs(item: tuple[str, str]) -> Iterator[tuple[str, int]]:
    """("clean", rows) for a clean shard, (reason, n) per reason for a reject shard."""
    kind, path = item
    if kind == "clean":
        yield "clean", contract.open_shard(path, contract.CLEAN_SCHEMA).metadata.num_rows
        return
    table = contract.read_shard(path, contract.REJECT_SCHEMA, columns=["drop_reason"])
    yield from collections.Counter(table.column("drop_reason").to_pylist()).items()


def clean_captions(item: tuple[str, str]) -> Iterator[str]:
    kind, path = item
    if kind == "clean":
        table = contract.read_shard(path, contract.CLEAN_SCHEMA, columns=["caption"])
        yield from (c or "" for c in table.column("caption").to_pylist())


class CaptionStatsFn(beam.CombineFn):
    def create_accumulator(self):
        return CaptionStats()

    def add_input(self, acc, caption):
        return acc.add(caption)

    def merge_accumulators(self, accumulators):
        merged = CaptionStats()
        for acc in accumulators:
            merged.merge(acc)
        return merged

    def extract_output(self, acc):
        return acc.table()


@dataclasses.dataclass(frozen=True)
class WriteReport:
    """Write funnel.json and stats.json into the output directory."""

    output: str
    input_count: int
    config: FilterConfig

    def __call__(self, _, counts, stats) -> str:
        funnel = contract.funnel_from_counts(self.input_count, counts, self.config.stages())
        contract.write_json(contract.join(self.output, FUNNEL_FILE), funnel)
        contract.write_json(contract.join(self.output, STATS_FILE), stats)
        return self.output


def after_writes(item: tuple[str, str], _written: int) -> tuple[str, str]:
    """Pass `item` on; the side input only makes this step wait for every shard write."""
    return item


class Report(beam.PTransform):
    """After the shards are written: count and describe the outputs, write funnel and stats."""

    def __init__(self, output: str, names: Sequence[str], input_count: int, config: FilterConfig):
        super().__init__()
        self.output, self.names, self.input_count, self.config = output, list(names), input_count, config

    def expand(self, written):
        pipeline = written.pipeline
        # Reading the outputs waits for every write: the number of shards written is a side input
        # (a count, not their list, so that no worker holds one entry per shard).
        done = written | "AllWritten" >> beam.combiners.Count.Globally()
        outputs = (pipeline
                   | "OutputShards" >> beam.Create(list(output_shards(self.output, self.names)))
                   | "AfterWrites" >> beam.Map(after_writes, AsSingleton(done))
                   | "SpreadOutputs" >> beam.Reshuffle())
        counts = (outputs
                  | "CountOutputs" >> beam.FlatMap(count_outputs)
                  | "SumCounts" >> beam.CombinePerKey(sum)
                  | "CountsDict" >> beam.combiners.ToDict())
        stats = (outputs
                 | "CleanCaptions" >> beam.FlatMap(clean_captions)
                 | "CaptionStats" >> beam.CombineGlobally(CaptionStatsFn()))
        return (pipeline
                | "ReportOnce" >> beam.Create([None])
                | "WriteReport" >> beam.Map(WriteReport(self.output, self.input_count, self.config),
                                            AsSingleton(counts), AsSingleton(stats)))


# --------------------------------------------------------------------------------------------
# The job
# --------------------------------------------------------------------------------------------


def word_lists_digest(config: FilterConfig) -> str:
    """A digest of the word lists in use (sensitive words, allow-list, name resources), so that an
    edited list makes old outputs stale even when its path is the same."""
    matcher = config.matcher()
    digest = hashlib.sha256("\n".join(matcher.words + ["--allow--"] + matcher.allow).encode("utf-8"))
    data = importlib.resources.files("filters").joinpath("data")
    for name in ("surnames.txt", "person_names.txt", "non_person_names.txt"):
        digest.update(data.joinpath(name).read_bytes())
    return digest.hexdigest()


def input_fingerprint(paths: Sequence[str], config: FilterConfig) -> dict:
    """What the outputs depend on: the raw shards (name, size, rows), the configuration and the
    word lists."""
    shards = []
    for path in paths:
        parquet = contract.open_shard(path, contract.RAW_SCHEMA)
        fs, local = contract.resolve(path)
        shards.append([path.rsplit("/", 1)[-1], fs.get_file_info(local).size, parquet.metadata.num_rows])
    config_json = json.dumps(config.to_json(), sort_keys=True)
    lists = word_lists_digest(config)
    digest = hashlib.sha256(json.dumps(shards).encode() + config_json.encode() + lists.encode()).hexdigest()
    return {"shards": shards, "config": config_json, "word_lists": lists, "digest": digest}


def pending_shards(output: str, names: Sequence[str]) -> list[int]:
    """Indices of the input shards whose reject and clean outputs are not both there yet."""
    pending = []
    for index, name in enumerate(names):
        if not (contract.exists(contract.join(output, REJECT_DIR, name))
                and contract.exists(contract.join(output, CLEAN_DIR, name))):
            pending.append(index)
    return pending


def prepare_output(output: str, fingerprint: dict, overwrite: bool) -> None:
    """Create the output directories; refuse (or with overwrite, clear) outputs of other inputs."""
    manifest = contract.join(output, MANIFEST_FILE)
    if contract.exists(manifest):
        previous = contract.read_json(manifest)
        if previous.get("digest") != fingerprint["digest"]:
            if not overwrite:
                raise FilterInputError(
                    f"{output} holds the outputs of other inputs or another configuration; "
                    "use a new --output, or --overwrite to replace them")
            _clear_outputs(output)
    elif contract.exists(contract.join(output, CLEAN_DIR)) and contract.list_shards(contract.join(output, CLEAN_DIR)):
        if not overwrite:
            raise FilterInputError(f"{output}/{CLEAN_DIR} holds shards of an unknown run; "
                                   "use a new --output, or --overwrite")
        _clear_outputs(output)
    for sub in (CLEAN_DIR, REJECT_DIR):
        contract.makedirs(contract.join(output, sub))
        contract.remove_stale_temporaries(contract.join(output, sub))
    contract.write_json(manifest, fingerprint)


def _clear_outputs(output: str) -> None:
    for sub in (CLEAN_DIR, REJECT_DIR):
        directory = contract.join(output, sub)
        if contract.exists(directory):
            fs, _ = contract.resolve(directory)
            for path in contract.list_shards(directory):
                fs.delete_file(contract.resolve(path)[1])
    for name in (FUNNEL_FILE, STATS_FILE, WORD_CLOUD_FILE):
        uri = contract.join(output, name)
        if contract.exists(uri):
            fs, path = contract.resolve(uri)
            fs.delete_file(path)


def build_pipeline(pipeline: beam.Pipeline, shard_paths: Sequence[str], output: str,
                   config: FilterConfig, pending: Sequence[int], input_count: int):
    """Wire the job into `pipeline`. All raw shards feed the corpus facts (URL duplicates and
    caption counts are global); only `pending` shards are filtered and written."""
    all_shards = pipeline | "AllRawShards" >> beam.Create(list(enumerate(shard_paths)))
    facts = all_shards | "CorpusFacts" >> CorpusFacts(config)
    pending_set = set(pending)
    todo = pipeline | "PendingShards" >> beam.Create([(i, p) for i, p in enumerate(shard_paths) if i in pending_set])
    work = todo | "JoinFacts" >> JoinFacts(facts)
    if config.dedup_images:
        # Exact image de-duplication applies among kept pairs, so the paper's rules run once over
        # the pending shards for a bytes-free tally of the kept images, then again below.
        # A shard done in an earlier run keeps its verdicts, and its kept images still count:
        # they come from its clean shard's sha256 column, so that a copy in a pending shard after
        # it is dropped exactly as in an uninterrupted run.
        finished = [(i, contract.join(output, CLEAN_DIR, output_name(p))) for i, p in enumerate(shard_paths)
                    if i not in pending_set]
        kept_before = (pipeline
                       | "FinishedCleanShards" >> beam.Create(finished)
                       | "FinishedKeptImages" >> beam.FlatMap(finished_kept_images))
        kept_now = work | "KeptImages" >> beam.ParDo(KeptImages(config))
        image_facts = ((kept_now, kept_before)
                       | "AllKeptImages" >> beam.Flatten()
                       | "ImageFacts" >> ImageFacts())
        work = todo | "JoinAllFacts" >> JoinFacts((facts, image_facts) | "WithImageFacts" >> beam.Flatten())
    written = work | "FilterShards" >> beam.ParDo(FilterShard(config, output))
    names = [output_name(p) for p in shard_paths]
    return written | "Report" >> Report(output, names, input_count, config)


def run_filter(input_dir: str, output: str, config: FilterConfig = FilterConfig(),
               beam_args: Sequence[str] = (), overwrite: bool = False, font: str | None = None,
               word_cloud: bool = True, log=print) -> dict:
    """Run the filter stage; returns the funnel. Raises FilterInputError for unusable inputs or
    outputs and contract.ShardReadError naming a raw shard that cannot be read."""
    shard_paths = contract.list_shards(input_dir)
    if not shard_paths:
        raise FilterInputError(f"no raw shards (*.parquet) in {input_dir}")
    with contract.hold_output_lock(output, "filter"):
        return _run_filter_locked(shard_paths, output, config, beam_args, overwrite, font, word_cloud, log)


def _run_filter_locked(shard_paths: Sequence[str], output: str, config: FilterConfig, beam_args: Sequence[str],
                       overwrite: bool, font: str | None, word_cloud: bool, log) -> dict:
    fingerprint = input_fingerprint(shard_paths, config)
    input_count = sum(rows for _, _, rows in fingerprint["shards"])
    prepare_output(output, fingerprint, overwrite)
    pending = pending_shards(output, [output_name(p) for p in shard_paths])
    log(f"filter: {len(shard_paths)} raw shards, {input_count} pairs; {len(pending)} shards to filter "
        f"({len(shard_paths) - len(pending)} already done)")
    started = time.monotonic()
    with beam.Pipeline(options=pipeline_options(beam_args)) as pipeline:
        build_pipeline(pipeline, shard_paths, output, config, pending, input_count)
    funnel = contract.read_json(contract.join(output, FUNNEL_FILE))
    log(f"filter: {funnel['output']} of {funnel['input']} pairs kept in {time.monotonic() - started:.1f}s; "
        + ", ".join(f"{r}={n}" for s in funnel["stages"] for r, n in s["dropped"].items()))
    if word_cloud:
        render_word_cloud(output, font, log)
    return funnel


def render_word_cloud(output: str, font: str | None, log=print) -> str | None:
    """Draw wordcloud.png from stats.json; a clear message, no crash, when there is no font or no
    word."""
    stats = contract.read_json(contract.join(output, STATS_FILE))
    path = contract.join(output, WORD_CLOUD_FILE)
    try:
        used = draw_word_cloud(stats["top_words"], path, font)
    except (FontNotFound, ValueError) as err:  # no CJK font, or no words
        log(f"filter: no word cloud: {err}")
        return None
    log(f"filter: word cloud {path} (font {used})")
    return path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.filter",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill(
            "Filter raw Wukong shards by the paper's rules: image size/aspect and full decode, "
            "Chinese word count, meaningless captions, caption frequency, person names (masked to "
            "<人名>) and sensitive words. Writes OUTPUT/clean/*.parquet, OUTPUT/rejects/*.parquet "
            "(with drop_reason), funnel.json, stats.json and wordcloud.png. A rerun resumes where "
            "a killed run stopped.", width=96),
        epilog=RUNNER_HELP)
    parser.add_argument("--input", required=True, help="directory (or gs://, s3:// URI) of raw shards")
    parser.add_argument("--output", required=True, help="output directory (or URI)")
    add_flags(parser, ImageConfig)
    add_flags(parser, TextConfig)
    add_flags(parser, FilterConfig)
    parser.add_argument("--font", default=None,
                        help="font file for the word cloud (default: a Chinese font from fontconfig)")
    parser.add_argument("--no-word-cloud", action="store_true", help="skip the word cloud")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace outputs of other inputs or settings in --output")
    return parser


def config_from_args(args: argparse.Namespace) -> FilterConfig:
    return FilterConfig(image=ImageConfig(**config_values(args, ImageConfig)),
                        text=TextConfig(**config_values(args, TextConfig)), **config_values(args, FilterConfig))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, beam_args = parser.parse_known_args(argv)
    try:
        config = config_from_args(args)
        config.matcher()  # fail now, not on a worker, on a missing list file
        if args.font and not os.path.isfile(args.font):
            raise FileNotFoundError(f"--font: no such font file: {args.font}")
        run_filter(args.input, args.output, config, beam_args, overwrite=args.overwrite,
                   font=args.font, word_cloud=not args.no_word_cloud,
                   log=lambda m: print(m, file=sys.stderr, flush=True))
    except (FilterInputError, contract.ShardReadError, contract.ShardSchemaError, contract.OutputLocked,
            FileNotFoundError, NotADirectoryError, ValueError) as err:
        print(f"filter: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
