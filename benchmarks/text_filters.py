"""Speed and agreement of the text filter chain: ours (rjieba + our name masker) against the same
chain built on plain jieba (jieba.cut for the word count, jieba.posseg `nr` for names), in the
same run, on one core.

    python -m benchmarks.text_filters [--captions 4000] [--seed 0] [--json OUT]

Reports captions per CPU-second of each chain (interleaved rounds, median) and the ratio; how often the word-count rule's keep/drop
decision agrees with jieba's (target >= 99.5%); and how often the masked captions agree.
The captions are generated offline: synthetic scene captions, the name caption set, captions
with names, brands, file names, long lists, mixed scripts and emoji.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence

from benchmarks.name_masking import load as load_name_captions
from filters.contract import NAME_MASK
from filters.rules import RuleSet
from filters.sensitive import SensitiveWordMatcher
from filters.text import TextConfig, check_length
from pipelines import synthetic

EXTRA = (
    "{name}出席{place}活动", "{name}同款{thing}", "{place}旅游攻略{thing}", "{thing}怎么选？{thing}推荐",
    "{name}和{name2}合影", "2023新款{thing}女装 韩版 宽松", "{place}夜景 😍 #旅行", "【{thing}】包邮 特价",
    "IMG_{n}.JPG", "{thing}_{n}.png", "Nike Air Max {n} 跑步鞋 {thing}", "繁體：{place}的風景很美",
)
NAMES = ("刘德华", "张小梅", "欧阳晓东", "李娜", "王建国", "梅西", "陈思琪", "周杰伦", "赵婷婷", "林嘉怡")
PLACES = ("北京", "黄山", "张家界", "西湖", "丽江古城", "上海外滩", "桂林", "成都宽窄巷子")
THINGS = ("连衣裙", "手机壳", "红木沙发", "明式家具", "金色吊灯", "玫瑰金手表", "李宁运动鞋", "蛋糕", "卡其色风衣")


def build_captions(n: int, seed: int) -> list[str]:
    """n varied captions, deterministic for the seed."""
    rng = random.Random(seed)
    pool = [c.text for c in load_name_captions()]
    captions = []
    for i in range(n):
        kind = rng.random()
        if kind < 0.45:
            captions.append(synthetic.caption_for(synthetic.random_scene(rng), rng))
        elif kind < 0.65:
            captions.append(rng.choice(pool))
        elif kind < 0.97:
            captions.append(rng.choice(EXTRA).format(
                name=rng.choice(NAMES), name2=rng.choice(NAMES), place=rng.choice(PLACES),
                thing=rng.choice(THINGS), n=rng.randrange(10000)))
        else:  # long captions, beyond 31 words
            captions.append("，".join(synthetic.caption_for(synthetic.random_scene(rng), rng) for _ in range(6)))
    return captions


def jieba_chain(matcher: SensitiveWordMatcher) -> RuleSet:
    """The same chain on plain jieba: jieba.cut counts words, jieba.posseg's nr tag masks names."""
    import jieba
    import jieba.posseg

    jieba.setLogLevel(60)
    jieba.initialize()

    def mask_nr(text: str) -> str:
        return "".join(NAME_MASK if pair.flag == "nr" else pair.word for pair in jieba.posseg.cut(text))

    return RuleSet(matcher=matcher, cut=jieba.cut, mask=mask_nr)


def throughput(chains: Sequence[RuleSet], captions: Sequence[str], rounds: int = 5,
               min_seconds: float = 2.0) -> list[float]:
    """Captions per CPU-second of each rule set's judge_caption, one core.

    The chains take turns, `rounds` times, each round at least min_seconds / rounds long, and each
    chain's median round is reported. CPU time of this process (not wall time) and interleaved
    rounds keep the ratio honest on a machine shared with other jobs.
    """
    for chain in chains:
        chain.judge_caption(captions[0])  # build lazy resources outside the timing
    per_round = max(min_seconds / rounds, 0.01)
    speeds: list[list[float]] = [[] for _ in chains]
    for _ in range(rounds):
        for i, chain in enumerate(chains):
            done, started = 0, time.process_time()
            while True:
                for caption in captions:
                    chain.judge_caption(caption)
                done += len(captions)
                elapsed = time.process_time() - started
                if elapsed >= per_round:
                    break
            speeds[i].append(done / elapsed)
    return [statistics.median(s) for s in speeds]


def agreement(captions: Sequence[str], ours: Callable[[str], object], theirs: Callable[[str], object]) -> float:
    return sum(ours(c) == theirs(c) for c in captions) / len(captions)


def run(n: int, seed: int, min_seconds: float) -> dict:
    import jieba

    captions = build_captions(n, seed)
    matcher = SensitiveWordMatcher.default()
    ours = RuleSet(matcher=matcher)
    reference = jieba_chain(matcher)
    ours_speed, reference_speed = throughput([ours, reference], captions, min_seconds=min_seconds)
    config = TextConfig()
    length_agreement = agreement(captions, lambda c: check_length(c, config),
                                 lambda c: check_length(c, config, jieba.cut))
    kept = [c for c in captions if ours.judge_caption(c).reason is None and reference.judge_caption(c).reason is None]
    mask_agreement = agreement(kept, lambda c: ours.judge_caption(c).caption, lambda c: reference.judge_caption(c).caption)
    return {
        "captions": n,
        "ours_captions_per_s": round(ours_speed, 1),
        "jieba_captions_per_s": round(reference_speed, 1),
        "speedup": round(ours_speed / reference_speed, 2),
        "length_rule_agreement": round(length_agreement, 5),
        "masked_caption_agreement": round(mask_agreement, 4),
        "captions_compared_for_masks": len(kept),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.text_filters", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--captions", type=int, default=4000, help="captions in the corpus (default 4000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-seconds", type=float, default=5.0,
                        help="CPU seconds each chain is timed, at least (over 5 interleaved rounds)")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    results = run(args.captions, args.seed, args.min_seconds)
    for key, value in results.items():
        print(f"{key:28s} {value}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
