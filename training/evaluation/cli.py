"""`python -m training.evaluate`: zero-shot classification, image-text retrieval and word-patch
alignment maps for a trained checkpoint (paper section 5).

    python -m training.evaluate zeroshot  --checkpoint runs/train --image-dir imagenet/val
    python -m training.evaluate retrieval --checkpoint runs/train --layout flickr \\
        --data flickr8kcn/data/flickr8kzhc.caption.txt --images Flicker8k_Dataset \\
        --split-file Flickr_8k.testImages.txt
    python -m training.evaluate alignment --checkpoint runs/train --image cat.jpg --text 一张猫的照片。
    python -m training.evaluate prompts   --classnames imagenet_zh.txt --templates templates_zh.txt

Results go to a JSON file (default: beside the checkpoint, `<checkpoint>.<task>-<dataset>.json`)
with the chance level of every metric, and a short table goes to the console.

The batch size, the DataLoader workers and the zero-shot options are flags of `RetrievalConfig` and
`ZeroShotConfig`, generated with their defaults (`filters.contract.flags`); the worker count
defaults to the machine's CPUs here instead of the configs' 0.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from collections.abc import Sequence

import torch

from filters import contract
from filters.contract.flags import add_flags, config_values
from training.evaluation.datasets import LAYOUTS, EvalDataError, load_image_folder, load_retrieval_set
from training.evaluation.datasets.image_folder import without_undecodable_images
from training.evaluation.embeddings import EmbeddingCache, checkpoint_fingerprint
from training.evaluation.progress import log
from training.evaluation.retrieval import DIRECTIONS, RetrievalConfig, evaluate_retrieval
from training.evaluation.zeroshot import ZeroShotConfig

# --------------------------------------------------------------------------------------------
# Results: JSON and the console table
# --------------------------------------------------------------------------------------------


def default_output(checkpoint: str, task: str, dataset: str, suffix: str = ".json") -> str:
    """`<dir of checkpoint>/<checkpoint stem>.<task>-<dataset><suffix>`."""
    stem = os.path.splitext(os.path.basename(checkpoint))[0]
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in dataset)
    return os.path.join(os.path.dirname(os.path.abspath(checkpoint)), f"{stem}.{task}-{safe}{suffix}")


def format_table(result: dict) -> str:
    """A short metric / value / chance table of a results dict."""
    metrics, chance = result["metrics"], result.get("chance", {})
    head = f"{result['task']} on {result['dataset']}"
    details = [f"{result['similarity']} similarity"]
    if "n_texts" in result:
        details.insert(0, f"{result['n_images']} images, {result['n_texts']} texts")
    else:
        details.insert(0, f"{result['n_images']} images, {result['n_classes']} classes")
        details.append(f"ensemble {result['ensemble']} over {result['n_templates']} templates")
    if result.get("skipped"):
        details.append(f"{result['skipped']} skipped: they do not decode")
    reranked = result.get("reranked")
    lines = [f"{head} ({'; '.join(details)})",
             f"{'metric':<10}{'value':>9}{'chance':>9}" + (f"{'re-ranked':>11}" if reranked else "")]
    for name, value in metrics.items():
        extra = f"{reranked['metrics'][name]:>11.2f}" if reranked else ""
        lines.append(f"{name:<10}{value:>9.2f}{chance.get(name, float('nan')):>9.2f}{extra}")
    if reranked:
        lines.append(f"re-ranked the top {reranked['top_k']}: {reranked['pairs_scored']} cross-encoder pairs "
                     f"in {reranked['seconds']:.1f}s")
    return "\n".join(lines)


def _provenance(loaded, checkpoint: str) -> dict:
    return {
        "checkpoint": os.path.abspath(checkpoint),
        "step": loaded.config.get("step"),
        "image_tower": loaded.config.get("model", {}).get("image_tower"),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _finish(result: dict, output: str) -> int:
    contract.write_json(output, result, indent=2)
    print(format_table(result))
    print(f"results: {output}")
    return 0


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------


def _load(args) -> tuple[object, str]:
    from training.api import load_model, resolve_checkpoint  # noqa: PLC0415 - keeps `--help` and `prompts` light

    checkpoint = resolve_checkpoint(args.checkpoint)
    log(f"loading {checkpoint} on {args.device}")
    return load_model(checkpoint, device=args.device), checkpoint


def command_retrieval(args) -> int:
    dataset = load_retrieval_set(args.layout, args.data, args.images, args.split, args.split_file, args.max_images)
    loaded, checkpoint = _load(args)
    config = RetrievalConfig(**config_values(args, RetrievalConfig))
    cache_dir = args.cache_dir or os.path.join(os.path.dirname(os.path.abspath(checkpoint)), "eval-cache")
    cache_dir = None if args.no_cache else cache_dir
    result = evaluate_retrieval(loaded, dataset, args.directions, config, EmbeddingCache(cache_dir),
                                model_key=checkpoint_fingerprint(checkpoint))
    result.update(layout=args.layout, data=os.path.abspath(args.data), **_provenance(loaded, checkpoint))
    if args.max_images:
        result["max_images"] = args.max_images
    return _finish(result, args.output or default_output(checkpoint, "retrieval", dataset.name))


def command_zeroshot(args) -> int:
    from training.evaluation.prompts import (  # noqa: PLC0415
        chinese_templates,
        imagenet_classnames_zh,
        read_classnames,
        read_templates,
    )
    from training.evaluation.zeroshot import classify  # noqa: PLC0415

    if args.classnames:
        classnames, names_source = read_classnames(args.classnames), os.path.abspath(args.classnames)
    else:
        classnames, names_source = list(imagenet_classnames_zh()), "cn-clip ImageNet-CN class names"
    templates = read_templates(args.templates) if args.templates else chinese_templates()
    dataset = without_undecodable_images(load_image_folder(args.image_dir, classnames))
    loaded, checkpoint = _load(args)
    config = ZeroShotConfig(**config_values(args, ZeroShotConfig))
    outcome = classify(loaded.model, loaded.tokenizer, loaded.transform, dataset, templates, loaded.device, config, log)
    details = outcome.as_dict()
    result = {
        "task": "zeroshot",
        "dataset": os.path.basename(os.path.normpath(args.image_dir)),
        "metrics": outcome.metrics,
        **{k: v for k, v in details.items() if k not in outcome.metrics},
        "classnames": names_source,
        "templates": os.path.abspath(args.templates) if args.templates else "cn-clip: 80 Chinese ImageNet templates",
        "image_dir": os.path.abspath(args.image_dir),
        **_provenance(loaded, checkpoint),
    }
    return _finish(result, args.output or default_output(checkpoint, "zeroshot", result["dataset"]))


def command_alignment(args) -> int:
    from filters.contract.images import ImageDecodeError, decode_image  # noqa: PLC0415
    from training.evaluation.alignment import (  # noqa: PLC0415
        displayed_image,
        save_alignment,
        word_patch_alignment,
    )

    if not os.path.isfile(args.image):
        raise EvalDataError(f"image not found: {args.image}")
    texts = list(args.text or []) + [args.template.format(name) for name in (args.classname or [])]
    if not texts:
        raise ValueError("give at least one --text or --classname")
    loaded, checkpoint = _load(args)
    with open(args.image, "rb") as f:
        data = f.read()
    try:
        pixels = loaded.transform(decode_image(data))
    except ImageDecodeError as error:
        raise EvalDataError(f"cannot read image {args.image}: {error}") from error
    shown = displayed_image(loaded.transform, pixels)
    stem = os.path.splitext(os.path.basename(args.image))[0]
    for index, text in enumerate(texts):
        alignment = word_patch_alignment(loaded.model, loaded.tokenizer, pixels, text)
        if args.output:
            path = args.output if len(texts) == 1 else f"{os.path.splitext(args.output)[0]}-{index}.png"
        else:
            path = default_output(checkpoint, "alignment", f"{stem}-{index}", ".png")
        png, sidecar = save_alignment(shown, alignment, path)
        counts = {alignment.tokens[p]: int((alignment.token_of_patch == p).sum()) for p in alignment.positions}
        print(f"{text}: patches per token {counts}")
        print(f"map: {png} (and {sidecar})")
    return 0


def command_prompts(args) -> int:
    from training.evaluation.prompts import (  # noqa: PLC0415
        chinese_templates,
        imagenet_classnames_zh,
        write_classnames,
    )

    if not args.classnames and not args.templates:
        raise ValueError("give --classnames FILE and/or --templates FILE")
    if args.classnames:
        write_classnames(args.classnames, imagenet_classnames_zh())
        print(f"wrote 1000 ImageNet-CN class names to {args.classnames}")
    if args.templates:
        write_classnames(args.templates, chinese_templates())
        print(f"wrote 80 Chinese templates to {args.templates}")
    return 0


# --------------------------------------------------------------------------------------------
# Argument parsing
# --------------------------------------------------------------------------------------------


def _default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _default_workers() -> int:
    """Decoding in worker processes keeps the accelerator fed; leave one CPU to the main process."""
    return max(0, min(8, os.cpu_count() or 1) - 1)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True,
                        help="a checkpoint file, or a training output directory (its best.pt, else its newest step)")
    parser.add_argument("--output", help="where to write the results (default: beside the checkpoint)")
    parser.add_argument("--device", default=_default_device(), help="torch device (default: cuda if available)")


def _run_flags(parser: argparse.ArgumentParser, config_cls: type, only: tuple[str, ...]) -> None:
    """The config's batching flags; the worker count defaults to the CPUs (see `_default_workers`)."""
    add_flags(parser, config_cls, only=only, defaults=config_cls(num_workers=_default_workers()))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.evaluate",
        description="Evaluate a trained LiT checkpoint: zero-shot classification with 80 Chinese prompts, "
                    "image-text retrieval (R@1/5/10 each way, MR) and word-patch alignment maps. Results go to "
                    "JSON (with chance levels) and a console table.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n")[1],
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    zeroshot = commands.add_parser(
        "zeroshot", help="zero-shot top-1/top-5 on an image folder (one sub-folder per class)",
        description="Zero-shot classification. Class names are matched to the sorted sub-folders of --image-dir. "
                    "Global models average the normalised template embeddings (mean_embedding); token-wise "
                    "models average the token-wise similarity over templates (mean_similarity, the paper) or "
                    "the per-template softmax probabilities (mean_probability, the authors' released code).")
    _common(zeroshot)
    _run_flags(zeroshot, ZeroShotConfig, only=("image_batch_size", "num_workers", "max_images"))
    zeroshot.add_argument("--image-dir", required=True, help="folder with one sub-folder of images per class")
    zeroshot.add_argument("--classnames", help="UTF-8 file, one Chinese class name per line in sorted folder "
                                               "order (default: cn-clip's 1,000 ImageNet-CN names)")
    zeroshot.add_argument("--templates", help="file of templates with one '{}' each (default: cn-clip's 80)")
    add_flags(zeroshot, ZeroShotConfig, only=("ensemble",))
    zeroshot.set_defaults(run=command_zeroshot)

    retrieval = commands.add_parser(
        "retrieval", help="image<->text retrieval R@1/5/10 and MR",
        description="Retrieval in both directions (MUGE: text->image only), several captions per image. "
                    "Layouts: tsv (Chinese-CLIP: DATA/<split>_imgs.tsv + <split>_texts.jsonl), muge "
                    "(DATA/MR_<split>_imgs.tsv + MR_<split>_queries.jsonl), flickr (DATA = a Flickr8K-CN caption "
                    "file or a Flickr30K-CN VisualSearch split folder; --images = the Flickr images), coco-cn "
                    "(DATA = the COCO-CN folder; --images = the COCO 2014 images), aic-icc (DATA = the "
                    "annotations JSON; --images = its image folder), shards (DATA = clean Parquet shards). "
                    "Embeddings are cached beside the checkpoint (eval-cache/).")
    _common(retrieval)
    _run_flags(retrieval, RetrievalConfig, only=("image_batch_size", "num_workers", "rerank_top_k"))
    retrieval.add_argument("--max-images", type=int, help="aic-icc and shards layouts: the first N images")
    retrieval.add_argument("--layout", required=True, choices=LAYOUTS, help="how the data set is stored")
    retrieval.add_argument("--data", required=True, help="the data set's file or folder (see the layouts above)")
    retrieval.add_argument("--images", help="image folder (flickr, coco-cn, aic-icc)")
    retrieval.add_argument("--split", help="split name (tsv/coco-cn: test, muge: valid)")
    retrieval.add_argument("--split-file", help="flickr: file listing the split's images, one per line")
    retrieval.add_argument("--directions", nargs="+", choices=DIRECTIONS,
                           help="directions to evaluate (default: the data set's; MUGE is t2i only)")
    retrieval.add_argument("--cache-dir", help="embedding cache folder (default: eval-cache/ beside the checkpoint)")
    retrieval.add_argument("--no-cache", action="store_true", help="do not read or write cached embeddings")
    retrieval.set_defaults(run=command_retrieval)

    alignment = commands.add_parser(
        "alignment", help="word-patch alignment map (PNG) of an image and Chinese prompts",
        description="For every image patch, the prompt token it matches best (argmax of the token-wise "
                    "similarity), drawn as a grid over the image the model saw; a JSON sidecar holds the map.")
    alignment.add_argument("--checkpoint", required=True, help="a checkpoint file or training output directory")
    alignment.add_argument("--image", required=True, help="the image file")
    alignment.add_argument("--text", action="append", help="a Chinese prompt (repeatable)")
    alignment.add_argument("--classname", action="append", help="a class name, put into --template (repeatable)")
    alignment.add_argument("--template", default="{}的照片。", help="template for --classname (default: {}的照片。)")
    alignment.add_argument("--output", help="PNG path (default: beside the checkpoint)")
    alignment.add_argument("--device", default=_default_device(), help="torch device")
    alignment.set_defaults(run=command_alignment)

    prompts = commands.add_parser(
        "prompts", help="write cn-clip's ImageNet-CN class names and/or the 80 Chinese templates to files",
        description="The class names and templates come from the installed cn-clip package (read as data).")
    prompts.add_argument("--classnames", help="write the 1,000 class names here, one per line")
    prompts.add_argument("--templates", help="write the 80 templates here, one per line")
    prompts.set_defaults(run=command_prompts)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (EvalDataError, FileNotFoundError, ValueError) as error:
        # Bad input (paths, layouts, counts): a one-line message, not a traceback.
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
