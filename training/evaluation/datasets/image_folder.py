"""Zero-shot classification sets: an image folder with one sub-folder per class (ImageNet's
`val/nXXXXXXXX/` layout)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace

from training.evaluation.datasets.galleries import EvalDataError, FileGallery, undecodable_images

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm")


@dataclass(frozen=True)
class ClassificationSet:
    """Images with integer labels; `classnames[label]` is the Chinese name of class `label`."""

    gallery: FileGallery
    labels: list[int]
    classnames: list[str]
    class_folders: list[str]
    skipped: int = 0  # images left out because they do not decode (`without_undecodable_images`)


def list_class_folders(root: str) -> list[str]:
    """The sub-folders of `root`, sorted: the class order of an ImageNet-style folder."""
    if not os.path.isdir(root):
        raise EvalDataError(f"image folder not found: {root}")
    return sorted(entry.name for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith("."))


def load_image_folder(root: str, classnames: Sequence[str]) -> ClassificationSet:
    """Images under `root/<class folder>/`, labelled by the sorted position of their folder.

    `classnames` must name the folders in that sorted order (ImageNet: the 1,000 names of
    `training.evaluation.prompts.imagenet_classnames_zh()` for the sorted `nXXXXXXXX` folders).
    """
    folders = list_class_folders(root)
    if len(classnames) != len(folders):
        raise EvalDataError(
            f"{len(classnames)} class names for {len(folders)} class folders in {root}: the "
            "class-name file must have one line per sub-folder, in sorted folder order"
        )
    ids, paths, labels = [], [], []
    for label, folder in enumerate(folders):
        directory = os.path.join(root, folder)
        for name in sorted(os.listdir(directory)):
            if name.lower().endswith(IMAGE_EXTENSIONS):
                ids.append(f"{folder}/{name}")
                paths.append(os.path.join(directory, name))
                labels.append(label)
    if not paths:
        raise EvalDataError(f"no images in the class folders of {root}")
    return ClassificationSet(FileGallery(ids, paths), labels, list(classnames), folders)


def without_undecodable_images(dataset: ClassificationSet) -> ClassificationSet:
    """The set without the images that do not decode (each named on stderr); `skipped` counts them."""
    bad = set(undecodable_images(dataset.gallery))
    if not bad:
        return dataset
    kept = [i for i in range(len(dataset.gallery)) if i not in bad]
    if not kept:
        raise EvalDataError("no image of the class folders decodes")
    return replace(dataset, gallery=dataset.gallery.subset(kept), labels=[dataset.labels[i] for i in kept],
                   skipped=dataset.skipped + len(bad))
