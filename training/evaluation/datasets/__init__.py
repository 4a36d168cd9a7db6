"""Evaluation sets read from local files, in the layouts in which the benchmarks are distributed;
one module per benchmark.

Zero-shot classification:
- `load_image_folder(root, classnames_file)`: one sub-folder per class (ImageNet's `val/nXXXXXXXX/`
  layout); classes are the sorted folder names, matched line by line with the class-name file.

Retrieval (each gives a `RetrievalSet`: an image gallery, texts, and the image(s) of each text):
- `load_tsv_jsonl`: Chinese-CLIP's common layout, `*_imgs.tsv` (`image_id<TAB>base64`) and
  `*_texts.jsonl` (`{"text_id": .., "text": .., "image_ids": [..]}`).
- `load_muge`: MUGE Multimodal Retrieval as distributed (`MR_<split>_imgs.tsv`,
  `MR_<split>_queries.jsonl` with `query_id`/`query_text`/`item_ids`), or Chinese-CLIP's
  `<split>_imgs.tsv`/`<split>_texts.jsonl` conversion of it. Text->image only.
- `load_flickr_cn`: Flickr8K-CN caption files (`flickr8kzhc.caption.txt`:
  `<image>.jpg#zhc#<n> <caption>`) and Flickr30K-CN split folders in the VisualSearch layout
  (`<split>/ImageSets/<split>.txt`, `<split>/TextData/seg.<split>.caption.txt` with word-segmented
  captions, BosonNLP `word:pos` tags on the human-translated test split), images from the original
  Flickr image folder.
- `load_coco_cn`: COCO-CN (`coco-cn_<split>.txt` image ids, `imageid.human-written-caption.txt`:
  `COCO_val2014_000000123456#0<TAB>caption`), images from the COCO 2014 `train2014/`/`val2014/`.
- `load_aic_icc`: AI Challenger image captioning (`caption_validation_annotations_20170910.json`:
  a list of `{"image_id": "<hash>.jpg", "caption": [5 captions], "url": ..}`).
- `load_clean_shards`: this project's clean Parquet shards (one caption per image), for held-out
  evaluation of our own corpus.

Every loader checks its input up front: a referenced image that is missing, or a gallery with no
image, is a clear error, because a silently shrunk benchmark is not the benchmark.
`load_retrieval_set(layout, ...)` (`layouts`) picks the loader of a command-line layout.
"""

from training.evaluation.datasets.aic_icc import load_aic_icc
from training.evaluation.datasets.annotations import join_segmented
from training.evaluation.datasets.clean_shards import load_clean_shards
from training.evaluation.datasets.coco_cn import load_coco_cn
from training.evaluation.datasets.flickr import load_flickr_cn
from training.evaluation.datasets.galleries import (
    Base64TsvGallery,
    BytesGallery,
    EvalDataError,
    FileGallery,
    Gallery,
)
from training.evaluation.datasets.image_folder import ClassificationSet, list_class_folders, load_image_folder
from training.evaluation.datasets.layouts import DEFAULT_SPLIT, LAYOUTS, load_retrieval_set
from training.evaluation.datasets.muge import load_muge
from training.evaluation.datasets.retrieval_set import RetrievalSet
from training.evaluation.datasets.tsv import load_tsv_jsonl

__all__ = [
    "DEFAULT_SPLIT", "LAYOUTS", "Base64TsvGallery", "BytesGallery", "ClassificationSet", "EvalDataError",
    "FileGallery", "Gallery", "RetrievalSet", "join_segmented", "list_class_folders", "load_aic_icc",
    "load_clean_shards", "load_coco_cn", "load_flickr_cn", "load_image_folder", "load_muge",
    "load_retrieval_set", "load_tsv_jsonl",
]
