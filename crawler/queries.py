"""Query lists: the default one built from jieba's dictionary, and users' own files.

The default list (`make queries`) is built offline and deterministically from the dictionary
jieba ships (`jieba/dict.txt`: about 349K lines of `word frequency POS-tag`):

1. keep words made only of Han characters (no digits, Latin letters or punctuation);
2. drop parts of speech that make useless image queries: function words (particles `u*`,
   pronouns `r*`, prepositions `p`, conjunctions `c`, modal particles `y`, interjections `e`,
   onomatopoeia `o`, adverbs `d*`), numerals `m*` and measure words `q`, `vq`, person names
   (`nr`, `nrt`, `nrfg`: the filter masks names, so a name query yields masked captions),
   locality words `f`, bare morphemes (`g`, `ng`, `vg`, `ag`, `tg`, `zg`, ...), prefixes `h`,
   suffixes `k`, and non-word strings `x`, `w`;
   single-character words are kept only when they are nouns (`n*`, place `s`, time `t`): 山, 猫
   and 春 are queries, 是, 有 and 大 are not;
3. order by frequency, highest first; ties broken by the word's code points, ascending;
4. keep the first 200,000 (the paper's number). Of the 349,046 entries, 242,665 pass rules 1-2.

A user's own list is UTF-8 text, one query per line; blank lines are skipped, surrounding
whitespace is stripped and repeated queries are kept once (first occurrence).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from collections.abc import Iterable, Iterator, Sequence

from crawler.errors import QueryFileError

DEFAULT_QUERY_COUNT = 200_000
_HAN_ONLY = re.compile(r"^[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+$")
#: POS tags (jieba's ICTCLAS-style set) whose words are kept out of the query list.
EXCLUDED_POS = frozenset({
    "u", "ud", "ug", "uj", "ul", "uv", "uz",  # particles, auxiliaries
    "r", "rg", "rr", "rz",  # pronouns
    "p", "c", "y", "e", "o",  # prepositions, conjunctions, modal particles, interjections, onomatopoeia
    "d", "dg", "df",  # adverbs
    "m", "mg", "mq", "q", "vq",  # numerals, measure words
    "nr", "nrt", "nrfg",  # person names
    "f",  # locality words (上面, 之间)
    "g", "ng", "vg", "ag", "tg", "zg",  # bare morphemes
    "h", "k",  # prefixes, suffixes
    "x", "w",  # non-word strings, punctuation
})
_SINGLE_CHAR_POS = ("n", "s", "t")


@dataclasses.dataclass(frozen=True)
class DictEntry:
    word: str
    frequency: int
    pos: str


def parse_dictionary(lines: Iterable[str]) -> Iterator[DictEntry]:
    """Entries of a jieba dictionary ("word freq [pos]" per line); malformed lines are skipped."""
    for line in lines:
        parts = line.split()
        if len(parts) < 2 or not parts[1].isdigit():
            continue
        yield DictEntry(parts[0], int(parts[1]), parts[2] if len(parts) > 2 else "")


def is_image_query(entry: DictEntry) -> bool:
    """Rules 1-2 of the module docstring."""
    if not _HAN_ONLY.match(entry.word) or entry.pos in EXCLUDED_POS:
        return False
    return len(entry.word) > 1 or entry.pos.startswith(_SINGLE_CHAR_POS)


def rank_queries(entries: Iterable[DictEntry], size: int = DEFAULT_QUERY_COUNT) -> list[str]:
    """The `size` most frequent image queries; ties broken by code points; words kept once."""
    if size <= 0:
        raise ValueError("size must be positive")
    best: dict[str, int] = {}
    for entry in entries:
        if is_image_query(entry):
            best[entry.word] = max(entry.frequency, best.get(entry.word, 0))
    ranked = sorted(best.items(), key=lambda item: (-item[1], item[0]))
    return [word for word, _ in ranked[:size]]


def jieba_dictionary_lines() -> Iterator[str]:
    """The lines of the dictionary jieba ships (read offline from the installed package)."""
    import jieba  # only here: the rest of the crawler does not need it

    with jieba.get_dict_file() as handle:
        for raw in handle:
            yield raw.decode("utf-8")


def default_queries(size: int = DEFAULT_QUERY_COUNT) -> list[str]:
    return rank_queries(parse_dictionary(jieba_dictionary_lines()), size)


def read_queries(data: bytes, source: str = "<queries>") -> list[str]:
    """Queries from the bytes of a UTF-8 file, one per line. Raises QueryFileError naming the
    line when the bytes are not UTF-8."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]  # a BOM is not part of the first query
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise QueryFileError(f"{source}: not UTF-8 text (line {line}, byte {err.start}: {err.reason}); "
                             f"save the file as UTF-8, one query per line") from err
    seen: set[str] = set()
    queries = []
    for line in text.splitlines():
        query = " ".join(line.split())
        if query and query not in seen:
            seen.add(query)
            queries.append(query)
    return queries


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m crawler.queries",
        description="Write the default query list: the most frequent image-worthy words of jieba's "
                    "dictionary, one per line (see the module docstring for the rule).")
    parser.add_argument("--output", required=True, help="file to write (UTF-8, one query per line)")
    parser.add_argument("--size", type=int, default=DEFAULT_QUERY_COUNT,
                        help=f"number of queries (default {DEFAULT_QUERY_COUNT}, the paper's)")
    args = parser.parse_args(argv)
    if args.size <= 0:
        parser.error("--size must be positive")
    queries = default_queries(args.size)
    with open(args.output, "w", encoding="utf-8") as handle:
        handle.write("\n".join(queries) + "\n")
    print(f"wrote {len(queries)} queries to {args.output} (first: {' '.join(queries[:8])})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
