"""The dataset report: one HTML page, with its PNGs beside it, on a filter output.

    python -m pipelines.report --input runs/filter [--output runs/filter/report]

It shows the paper's Table 2 (pairs, unique tokens, tokens per caption: mean, std, median), the
funnel (counts per drop reason, as a table and a chart), the distribution of tokens per caption,
the word cloud and a grid of sample image-caption pairs. `report.json` holds the same numbers for
machines.

Table 2, the histogram and the word cloud are the filter's: read from `stats.json` and
`wordcloud.png` beside the clean shards. Only clean shards without them (a split's `test/`, shards
from elsewhere) have their captions counted here, in one pass, row group by row group. The sample
is drawn (seeded) from the row counts in the shards' footers, so the same seed gives the same pairs
on every rerun, and only the row groups that hold a sampled pair have their images read.

Pure wiring over pyarrow, matplotlib and Pillow: no Beam, no torch. Every file is written
atomically (filters.contract.storage), index.html last.
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import html
import io
import os
import random
import re
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pyarrow as pa

from filters import contract
from pipelines.stats import CaptionStats, FontNotFound, draw_word_cloud, find_cjk_font

INDEX_FILE = "index.html"
REPORT_FILE = "report.json"
FUNNEL_CHART = "funnel.png"
LENGTH_CHART = "caption_lengths.png"
SAMPLES_DIR = "samples"
DEFAULT_SAMPLES = 24
THUMBNAIL_SIDE = 256
PROGRESS_EVERY = 50  # shards between progress lines
_STAT_COLUMNS = ["caption"]
_SAMPLE_COLUMNS = ["key", "caption", "query", "width", "height"]

Log = Callable[[str], None]


class ReportInputError(ValueError):
    """The input holds no clean shards, or the report cannot be written where asked."""


@dataclasses.dataclass(frozen=True)
class Sample:
    """One sampled pair; `position` is its row number over all shards, in shard order."""

    position: int
    key: str
    caption: str
    query: str
    width: int
    height: int
    image: bytes | None


# --------------------------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------------------------


def locate_input(input_dir: str) -> tuple[list[str], str | None]:
    """(clean shards, the filter output directory or None) of a filter output directory, or of a
    directory that holds clean shards itself (then the directory itself, or its parent when it is
    a filter's clean/, if it holds a funnel.json). Raises ReportInputError naming the path when
    there is no shard."""
    input_dir = input_dir.rstrip("/") or "/"
    parent, _, name = input_dir.rpartition("/")
    beside_clean = [parent] if name == contract.CLEAN_DIR and parent else []
    layouts = [(contract.join(input_dir, contract.CLEAN_DIR), [input_dir]),  # a filter output directory
               (input_dir, [input_dir, *beside_clean])]  # clean shards themselves
    for shard_dir, funnel_dirs in layouts:
        try:
            shards = contract.list_shards(shard_dir)
        except (FileNotFoundError, NotADirectoryError):
            continue
        if shards:
            found = [d for d in funnel_dirs if contract.exists(contract.join(d, contract.FUNNEL_FILE))]
            return shards, found[0] if found else None
    raise ReportInputError(f"no clean shards (*.parquet) in {input_dir} or {contract.join(input_dir, contract.CLEAN_DIR)}")


def read_funnel(uri: str) -> dict:
    """funnel.json, checked against docs/design.md's layout (ReportInputError naming it if not)."""
    try:
        funnel = contract.read_json(uri)
        contract.validate_funnel(funnel)
    except (ValueError, KeyError, TypeError) as err:
        raise ReportInputError(f"{uri}: not a valid funnel.json ({err})") from err
    return funnel


def dropped_per_reason(funnel: Mapping[str, Any]) -> dict[str, int]:
    """{reason: pairs dropped} over all stages, in pipeline order, zero counts left out."""
    counts: dict[str, int] = {}
    for stage in funnel["stages"]:
        for reason, n in stage["dropped"].items():
            if n:
                counts[reason] = counts.get(reason, 0) + int(n)
    return counts


def read_stats(uri: str) -> dict:
    """stats.json of a filter output (ReportInputError naming it when it is not one)."""
    try:
        table = contract.read_json(uri)
        missing = {"pairs", "unique_tokens", "tokens_per_caption", "length_histogram", "top_words"} - set(table)
    except (ValueError, TypeError) as err:
        raise ReportInputError(f"{uri}: not a valid stats.json ({err})") from err
    if missing:
        raise ReportInputError(f"{uri}: not a valid stats.json (missing {sorted(missing)}; "
                               "rerun python -m pipelines.filter to rewrite it)")
    return table


def scan_shards(shards: Sequence[str], samples: int, seed: int, log: Log, count_captions: bool = True,
                progress_every: int = PROGRESS_EVERY) -> tuple[CaptionStats | None, list[Sample]]:
    """`samples` pairs drawn uniformly with `seed`, and (with `count_captions`) Table 2's counts
    over every caption."""
    # Row counts from the footers first (one shard open at a time: inputs may hold thousands).
    total = sum(contract.open_shard(path, contract.CLEAN_SCHEMA).metadata.num_rows for path in shards)
    chosen = sorted(random.Random(seed).sample(range(total), min(samples, total)))
    stats = CaptionStats() if count_captions else None
    picked, offset = [], 0
    for done, path in enumerate(shards, start=1):
        parquet = contract.open_shard(path, contract.CLEAN_SCHEMA)
        try:
            for group in range(parquet.metadata.num_row_groups):
                rows = parquet.metadata.row_group(group).num_rows
                if stats is not None:
                    table = parquet.read_row_group(group, columns=_STAT_COLUMNS, use_threads=False)
                    for caption in table.column("caption").to_pylist():
                        stats.add(caption or "")
                wanted = [i - offset for i in chosen[bisect.bisect_left(chosen, offset):
                                                     bisect.bisect_left(chosen, offset + rows)]]
                if wanted:
                    picked += _read_samples(parquet, group, wanted, offset)
                offset += rows
        except (pa.ArrowInvalid, OSError) as err:
            raise contract.ShardReadError(f"{path}: truncated or corrupt Parquet data ({err})") from err
        if done % progress_every == 0 and done < len(shards):
            log(f"report: {done}/{len(shards)} shards, {offset} pairs")
    return stats, picked


def _read_samples(parquet, group: int, rows: list[int], offset: int) -> list[Sample]:
    """The sampled rows of one row group, with their image bytes (only this group's are read)."""
    table = parquet.read_row_group(group, columns=_SAMPLE_COLUMNS + ["image"], use_threads=False)
    table = table.take(pa.array(rows, type=pa.int64()))
    return [Sample(position=offset + row, key=r["key"], caption=r["caption"] or "", query=r["query"] or "",
                   width=r["width"] or 0, height=r["height"] or 0, image=r["image"])
            for row, r in zip(rows, table.to_pylist())]


# --------------------------------------------------------------------------------------------
# Charts and thumbnails
# --------------------------------------------------------------------------------------------


def _pyplot(font: str | None):
    """matplotlib's pyplot on the Agg backend, with a CJK font first in line when there is one."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import font_manager, pyplot

    families = ["DejaVu Sans"]
    if font:
        font_manager.fontManager.addfont(font)
        families.insert(0, font_manager.FontProperties(fname=font).get_name())
    pyplot.rcParams["font.family"] = families
    return pyplot


def _save(pyplot, figure, path: str) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    pyplot.close(figure)
    contract.write_bytes(path, buffer.getvalue())


def draw_funnel_chart(funnel: Mapping[str, Any], path: str, font: str | None = None) -> None:
    """Horizontal bars: pairs dropped per reason, in pipeline order, then the pairs kept."""
    pyplot = _pyplot(font)
    counts = dropped_per_reason(funnel)
    labels = list(counts) + ["kept"]
    values = list(counts.values()) + [int(funnel["output"])]
    figure, axes = pyplot.subplots(figsize=(9, 0.45 * len(labels) + 1.4))
    bars = axes.barh(labels, values, color=["#c0504d"] * len(counts) + ["#4f81bd"])
    axes.bar_label(bars, labels=[f"{v:,}" for v in values], padding=3)
    axes.invert_yaxis()
    axes.set_xlabel("pairs")
    axes.set_title(f"Filter funnel: {int(funnel['input']):,} pairs in, {int(funnel['output']):,} kept")
    axes.margins(x=0.12)
    _save(pyplot, figure, path)


def draw_length_chart(table: Mapping[str, Any], path: str, font: str | None = None) -> None:
    """Histogram of tokens per caption (Table 2's `length_histogram`), mean and median marked."""
    pyplot = _pyplot(font)
    from matplotlib.ticker import MaxNLocator

    figure, axes = pyplot.subplots(figsize=(9, 4))
    histogram = dict((int(n), int(c)) for n, c in table["length_histogram"])
    lengths = sorted(histogram)
    axes.bar(lengths, [histogram[n] for n in lengths], width=0.9, color="#4f81bd")
    per_caption = table["tokens_per_caption"]
    if table["pairs"]:
        axes.axvline(per_caption["mean"], color="#c0504d", linestyle="--", label=f"mean {per_caption['mean']:.2f}")
        axes.axvline(per_caption["median"], color="#2e7d32", linestyle=":", linewidth=2,
                     label=f"median {per_caption['median']:g}")
        axes.legend()
    else:
        axes.text(0.5, 0.5, "no captions", ha="center", va="center", transform=axes.transAxes)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("tokens per caption")
    axes.set_ylabel("captions")
    axes.set_title(f"Tokens per caption ({table['pairs']:,} captions)")
    _save(pyplot, figure, path)


def place_word_cloud(filter_output: str | None, top_words: Sequence[tuple[str, int]], path: str,
                     font: str | None) -> str | None:
    """The filter's word cloud copied to `path`, or one drawn from `top_words` when the filter
    drew none; None when there is one, else why not (for the page)."""
    drawn = contract.join(filter_output, contract.WORD_CLOUD_FILE) if filter_output else None
    if drawn and contract.exists(drawn):
        fs, local = contract.resolve(drawn)
        with fs.open_input_stream(local) as stream:
            contract.write_bytes(path, stream.read())
        return None
    try:
        draw_word_cloud(top_words, path, font)
    except (FontNotFound, ValueError) as err:  # no CJK font, or no words
        return f"No word cloud: {err}."
    return None


def write_thumbnail(image: bytes | None, path: str, side: int = THUMBNAIL_SIDE) -> bool:
    """A JPEG thumbnail of the image bytes at `path`; False when the bytes do not decode."""
    from PIL import Image, ImageOps

    if not image:
        return False
    try:
        with Image.open(io.BytesIO(image)) as source:
            source.draft("RGB", (side, side))  # JPEG: decode at a reduced scale
            picture = ImageOps.exif_transpose(source)
            picture.thumbnail((side, side))
            if picture.mode != "RGB":
                background = Image.new("RGB", picture.size, "white")
                rgba = picture.convert("RGBA")
                background.paste(rgba, mask=rgba.getchannel("A"))
                picture = background
            buffer = io.BytesIO()
            picture.save(buffer, format="JPEG", quality=85)
    except (OSError, ValueError, Image.DecompressionBombError):
        return False
    contract.write_bytes(path, buffer.getvalue())
    return True


def sample_name(index: int, count: int) -> str:
    return f"{index:0{max(3, len(str(count - 1)))}d}.jpg"


def write_thumbnails(samples: Sequence[Sample], output: str) -> list[str | None]:
    """samples/NNN.jpg for each sample (None where its image does not decode); removes the
    thumbnails of an earlier run that this one does not write."""
    directory = os.path.join(output, SAMPLES_DIR)
    os.makedirs(directory, exist_ok=True)
    names = []
    for index, sample in enumerate(samples):
        name = sample_name(index, len(samples))
        names.append(f"{SAMPLES_DIR}/{name}" if write_thumbnail(sample.image, os.path.join(directory, name)) else None)
    keep = {n.rsplit("/", 1)[-1] for n in names if n}
    for stale in os.listdir(directory):
        if re.fullmatch(r"\d{3,}\.jpg", stale) and stale not in keep:
            os.remove(os.path.join(directory, stale))
    return names


# --------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------

_CSS = """
body { font-family: "WenQuanYi Micro Hei", "Noto Sans CJK SC", sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
img.chart { max-width: 100%; display: block; margin: 0.5em 0; }
img#word-cloud { max-width: 800px; width: 100%; }
.note { background: #fff4e5; border-left: 4px solid #f0a030; padding: 0.5em 1em; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(180px, 1fr)); gap: 12px; }
figure { margin: 0; border: 1px solid #ddd; padding: 6px; background: #fafafa; }
figure img { width: 100%; height: 160px; object-fit: contain; background: #fff; }
figcaption { font-size: 0.9em; word-break: break-all; }
.meta { color: #666; font-size: 0.85em; }
"""


def _e(value: Any) -> str:
    """HTML-escaped text: captions and queries are web text."""
    return html.escape(str(value), quote=True)


def _table2_html(table: Mapping[str, Any]) -> str:
    per = table["tokens_per_caption"]
    rows = [("Pairs", f"{table['pairs']:,}"), ("Unique tokens", f"{table['unique_tokens']:,}"),
            ("Tokens per caption: mean", f"{per['mean']:.2f}"), ("Tokens per caption: std", f"{per['std']:.2f}"),
            ("Tokens per caption: median", f"{per['median']:g}"),
            ("Captions with masked names (&lt;人名&gt;)", f"{table['captions_with_masked_names']:,}")]
    body = "".join(f"<tr><th>{label}</th><td class=n>{_e(value)}</td></tr>" for label, value in rows)
    return f'<table id="table2">{body}</table>'


def _funnel_html(funnel: Mapping[str, Any] | None, funnel_note: str, pairs: int) -> str:
    if funnel is None:
        return f'<p class="note" id="no-funnel">{_e(funnel_note)}</p>'
    rows = [f"<tr><td>input</td><td></td><td class=n></td><td class=n>{int(funnel['input']):,}</td></tr>"]
    for stage in funnel["stages"]:
        dropped = stage["dropped"] or {"": 0}
        for i, (reason, n) in enumerate(dropped.items()):
            remaining = f"{int(stage['remaining']):,}" if i == len(dropped) - 1 else ""
            rows.append(f"<tr><td>{_e(stage['stage']) if i == 0 else ''}</td><td>{_e(reason)}</td>"
                        f"<td class=n>{int(n):,}</td><td class=n>{remaining}</td></tr>")
    rows.append(f"<tr><th>kept</th><th></th><th></th><th class=n>{int(funnel['output']):,}</th></tr>")
    mismatch = ("" if int(funnel["output"]) == pairs else
                f'<p class="note">funnel.json counts {int(funnel["output"]):,} kept pairs; the clean shards '
                f"hold {pairs:,}.</p>")
    return (f'<img class="chart" id="funnel-chart" src="{FUNNEL_CHART}" alt="funnel: pairs dropped per reason">'
            f'<table id="funnel"><tr><th>stage</th><th>drop reason</th><th>dropped</th><th>remaining</th></tr>'
            f'{"".join(rows)}</table>{mismatch}')


def _samples_html(samples: Sequence[Sample], thumbnails: Sequence[str | None]) -> str:
    if not samples:
        return '<p class="note">No pairs to sample.</p>'
    cells = []
    for sample, thumbnail in zip(samples, thumbnails):
        picture = (f'<img src="{_e(thumbnail)}" alt="sample {sample.position}" loading="eager">' if thumbnail
                   else '<p class="note">image does not decode</p>')
        cells.append(f"<figure>{picture}<figcaption>{_e(sample.caption)}"
                     f'<div class="meta">query: {_e(sample.query)} · {sample.width}×{sample.height}</div>'
                     f"</figcaption></figure>")
    return f'<div class="grid" id="samples">{"".join(cells)}</div>'


def render_html(title: str, table: Mapping[str, Any], funnel: Mapping[str, Any] | None, funnel_note: str,
                word_cloud_note: str | None, samples: Sequence[Sample], thumbnails: Sequence[str | None],
                seed: int) -> str:
    cloud = (f'<p class="note" id="no-word-cloud">{_e(word_cloud_note)}</p>' if word_cloud_note else
             f'<img class="chart" id="word-cloud" src="{contract.WORD_CLOUD_FILE}" alt="word cloud of the captions">')
    return f"""<!DOCTYPE html>
<html lang="zh">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>{_e(title)}</h1>
<h2>Statistics (Table 2)</h2>
{_table2_html(table)}
<h2>Filter funnel</h2>
{_funnel_html(funnel, funnel_note, table["pairs"])}
<h2>Tokens per caption</h2>
<img class="chart" id="length-chart" src="{LENGTH_CHART}" alt="histogram of tokens per caption">
<h2>Word cloud</h2>
{cloud}
<h2>Sample pairs</h2>
<p class="meta">{len(samples)} pairs drawn uniformly over all shards (seed {seed}).</p>
{_samples_html(samples, thumbnails)}
</body>
</html>
"""


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


def build_report(input_dir: str, output: str | None = None, samples: int = DEFAULT_SAMPLES, seed: int = 0,
                 font: str | None = None, log: Log = print) -> dict:
    """Write the report of `input_dir` into `output` (local; default INPUT/report) and return
    report.json's content. Raises ReportInputError when there are no clean shards."""
    if samples < 0:
        raise ReportInputError(f"--samples must be at least 0, not {samples}")
    shards, filter_output = locate_input(input_dir)
    if output is None:
        if "://" in input_dir:
            raise ReportInputError(f"{input_dir} is not local: pass --output DIR (a local directory)")
        output = os.path.join(input_dir, "report")
    os.makedirs(output, exist_ok=True)
    funnel = read_funnel(contract.join(filter_output, contract.FUNNEL_FILE)) if filter_output else None
    stats_path = contract.join(filter_output, contract.STATS_FILE) if filter_output else None
    table = read_stats(stats_path) if stats_path and contract.exists(stats_path) else None
    log(f"report: {len(shards)} clean shards in {shards[0].rsplit('/', 1)[0]}"
        + (f"; Table 2 from {stats_path}" if table else "; counting their captions"))

    stats, picked = scan_shards(shards, samples, seed, log, count_captions=table is None)
    if table is None:
        table = stats.table()
    font = font or find_cjk_font()
    log(f"report: {table['pairs']} pairs, {table['unique_tokens']} unique tokens; drawing charts")

    funnel_note = ""
    if funnel is not None:
        draw_funnel_chart(funnel, os.path.join(output, FUNNEL_CHART), font)
    else:
        funnel_note = (f"No funnel: there is no funnel.json beside the clean shards of {input_dir} "
                       "(it is written by python -m pipelines.filter).")
    draw_length_chart(table, os.path.join(output, LENGTH_CHART), font)
    cloud_note = place_word_cloud(filter_output, table["top_words"], os.path.join(output, contract.WORD_CLOUD_FILE),
                                  font)
    if cloud_note:
        log(f"report: {cloud_note}")
    thumbnails = write_thumbnails(picked, output)

    report = {
        "input": input_dir,
        "shards": len(shards),
        "table2": {k: v for k, v in table.items() if k not in ("top_words", "length_histogram")},
        "top_words": table["top_words"][:50],
        "funnel": None if funnel is None else {"input": funnel["input"], "dropped": dropped_per_reason(funnel),
                                               "output": funnel["output"]},
        "word_cloud": None if cloud_note else contract.WORD_CLOUD_FILE,
        "seed": seed,
        "samples": [{"key": s.key, "position": s.position, "caption": s.caption, "query": s.query,
                     "width": s.width, "height": s.height, "thumbnail": t} for s, t in zip(picked, thumbnails)],
    }
    contract.write_json(os.path.join(output, REPORT_FILE), report)
    title = f"Dataset report: {input_dir.rstrip('/').rsplit('/', 1)[-1] or input_dir}"
    page = render_html(title, table, funnel, funnel_note, cloud_note, picked, thumbnails, seed)
    contract.write_bytes(os.path.join(output, INDEX_FILE), page.encode("utf-8"))  # last: the page is complete
    log(f"report: wrote {os.path.join(output, INDEX_FILE)}")
    return report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.report",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill(
            "Write a dataset report of clean Wukong shards: OUTPUT/index.html (open it in a browser) "
            "with Table 2 of the paper (pairs, unique tokens, tokens per caption: mean/std/median), "
            "the filter funnel (counts per drop reason, from funnel.json), a histogram of tokens per "
            "caption, the word cloud and a grid of sampled image-caption pairs, with the PNG/JPEG "
            "files beside it, and OUTPUT/report.json with the numbers.", width=96))
    parser.add_argument("--input", required=True,
                        help="a filter output directory (with clean/ and funnel.json), or a directory "
                             "of clean shards; local or a gs://, s3:// URI")
    parser.add_argument("--output", default=None, help="local output directory (default: INPUT/report)")
    parser.add_argument("--samples", type=int, default=DEFAULT_SAMPLES,
                        help=f"image-caption pairs in the sample grid (default {DEFAULT_SAMPLES})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample: same seed, same pairs (default 0)")
    parser.add_argument("--font", default=None,
                        help="font file that covers Chinese, for the word cloud and charts "
                             "(default: one from fontconfig)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.font and not os.path.isfile(args.font):
            raise ReportInputError(f"--font: no such font file: {args.font}")
        build_report(args.input, args.output, samples=args.samples, seed=args.seed, font=args.font,
                     log=lambda m: print(m, file=sys.stderr, flush=True))
    except (ReportInputError, contract.ShardReadError, contract.ShardSchemaError) as err:
        print(f"report: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
