"""Zero-shot classification: the three ensembles, ties, and the training-time validation hook on a
tiny real model."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.support.evaluation_sets import write_image_folder
from training.evaluation.datasets import EvalDataError, load_image_folder
from training.evaluation.prompts import chinese_templates
from training.evaluation.zeroshot import (
    ZeroShotConfig,
    class_weights_global,
    classify,
    evenly_spaced,
    label_ranks,
    resolve_ensemble,
    token_wise_class_scores,
    zero_shot_chance,
    zero_shot_validate,
)
from training.loss import token_wise_i2t
from training.model import LiTConfig, LiTModel
from training.tokenizer import default_tokenizer
from training.transforms import image_transform

# --------------------------------------------------------------------------------------------
# Ensembles, on controlled embeddings
# --------------------------------------------------------------------------------------------


class TableTokenizer:
    """Gives each distinct text an id; the fake model looks the text up by that id."""

    def __init__(self):
        self.texts: list[str] = []

    def __call__(self, texts):
        ids = []
        for text in texts:
            if text not in self.texts:
                self.texts.append(text)
            ids.append(self.texts.index(text))
        ids = torch.tensor(ids)[:, None].repeat(1, 4)
        return ids, torch.ones_like(ids)


class TableTextModel(torch.nn.Module):
    """encode_text(ids) -> the (unnormalised) vector `table(text)` of the text with that id."""

    similarity = "global"

    def __init__(self, tokenizer, table):
        super().__init__()
        self.tokenizer, self.table = tokenizer, table

    def encode_text(self, ids, mask):
        return torch.stack([self.table(self.tokenizer.texts[int(i)]) for i in ids[:, 0]])


def test_global_class_weight_is_the_renormalised_mean_of_normalised_prompts():
    vectors = {"A的照片": torch.tensor([10.0, 0.0, 0.0]), "A的画": torch.tensor([0.0, 1.0, 0.0]),
               "B的照片": torch.tensor([0.0, 0.0, 3.0]), "B的画": torch.tensor([0.0, 2.0, 2.0])}
    tokenizer = TableTokenizer()
    model = TableTextModel(tokenizer, lambda text: vectors[text])
    weights = class_weights_global(model, tokenizer, ["A", "B"], ["{}的照片", "{}的画"], torch.device("cpu"), 3)
    expected_a = F.normalize(torch.tensor([1.0, 1.0, 0.0]) / 2, dim=0)  # not normalize([10, 1, 0])
    expected_b = F.normalize((torch.tensor([0.0, 0.0, 1.0]) + F.normalize(torch.tensor([0.0, 2.0, 2.0]), dim=0)) / 2, dim=0)
    assert torch.allclose(weights, torch.stack([expected_a, expected_b]), atol=1e-6)


def _scores_in_tokens(per_prompt: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompt tokens whose first feature is the prompt's score, for `score_by_first_feature`."""
    tokens = torch.zeros(len(per_prompt), 2, 3)
    tokens[:, 0, 0] = torch.tensor(per_prompt)
    return tokens.half(), torch.ones(len(per_prompt), 2, dtype=torch.bool)


def score_by_first_feature(image_tokens, text_tokens, mask):
    return text_tokens[:, 0, 0][None, :].expand(image_tokens.shape[0], -1).float()


def test_token_wise_ensembles_can_disagree():
    # 2 classes x 3 templates, class-major. Mean similarity: A 0.5 > B 0.233. Per-template softmax
    # at scale 100: template 0 votes A, templates 1 and 2 vote B: mean probability B > A.
    tokens, mask = _scores_in_tokens([0.9, 0.3, 0.3, 0.0, 0.35, 0.35])
    image = torch.zeros(1, 4, 3)
    mean_similarity = token_wise_class_scores(image, tokens, mask, 2, "mean_similarity", 100.0,
                                              prompt_chunk=4, similarity_fn=score_by_first_feature)
    assert torch.allclose(mean_similarity, torch.tensor([[0.5, 0.7 / 3]]), atol=1e-3)
    mean_probability = token_wise_class_scores(image, tokens, mask, 2, "mean_probability", 100.0,
                                               prompt_chunk=4, similarity_fn=score_by_first_feature)
    p = torch.tensor([0.3, 0.35]).mul(100).softmax(0)
    assert torch.allclose(mean_probability, torch.tensor([[(1 + 2 * p[0]) / 3, 2 * p[1] / 3]]), atol=1e-3)
    assert mean_similarity.argmax() == 0 and mean_probability.argmax() == 1


def test_ensemble_must_fit_the_similarity():
    assert resolve_ensemble("global", None) == "mean_embedding"
    assert resolve_ensemble("token_wise", None) == "mean_similarity"
    assert resolve_ensemble("token_wise", "mean_probability") == "mean_probability"
    with pytest.raises(ValueError, match="global model supports"):
        resolve_ensemble("global", "mean_probability")
    with pytest.raises(ValueError, match="ensemble must be one of"):
        ZeroShotConfig(ensemble="vote")


def test_max_images_spreads_over_the_classes():
    assert evenly_spaced(10, None) == list(range(10))
    assert evenly_spaced(10, 4) == [0, 3, 6, 9]
    assert evenly_spaced(3, 1) == [0]


def test_ties_go_to_the_lower_class_index():
    scores = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.2, 0.5, 0.5]])
    assert label_ranks(scores, torch.tensor([0, 1, 2])).tolist() == [1, 2, 2]
    assert zero_shot_chance(4, (1, 5)) == {"top1": 25.0, "top5": 100.0}


# --------------------------------------------------------------------------------------------
# The training-time hook on a tiny real model
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_parts():
    torch.manual_seed(0)
    models = {s: LiTModel(LiTConfig.tiny(similarity=s)) for s in ("global", "token_wise")}
    transform = image_transform(models["global"].image_tower, training=False, image_size=64)
    return models, default_tokenizer(), transform


CLASSES = ["红色", "蓝色", "绿色", "黄色"]


def _reference_top1(model, tokenizer, transform, image_dir, templates):
    """Straightforward zero-shot without batching or chunking: (top-1, top-1 per class)."""
    dataset = load_image_folder(image_dir, CLASSES)
    pixels = torch.stack([transform(dataset.gallery.load(i)) for i in range(len(dataset.labels))])
    prompts = [t.format(c) for c in CLASSES for t in templates]
    ids, attention = tokenizer(prompts)
    with torch.no_grad():
        if model.similarity == "global":
            text = F.normalize(model.encode_text(ids, attention), dim=-1).view(len(CLASSES), len(templates), -1)
            scores = model.encode_image(pixels) @ F.normalize(text.mean(1), dim=-1).T
        else:
            tokens, mask = model.encode_text_tokens(ids, attention)
            per_prompt = token_wise_i2t(model.encode_image_tokens(pixels), tokens, mask)
            scores = per_prompt.view(len(pixels), len(CLASSES), len(templates)).mean(-1)
    correct = (scores.argmax(1) == torch.tensor(dataset.labels)).double()
    per_class = [100.0 * float(correct[torch.tensor(dataset.labels) == c].mean()) for c in range(len(CLASSES))]
    return 100.0 * float(correct.mean()), per_class


@pytest.mark.parametrize("similarity", ["global", "token_wise"])
def test_zero_shot_validate_matches_a_direct_computation(tmp_path, tiny_parts, similarity):
    models, tokenizer, transform = tiny_parts
    model = models[similarity]
    names = write_image_folder(str(tmp_path), CLASSES, per_class=3)
    templates = chinese_templates()[:7]
    model.train()
    config = ZeroShotConfig(image_batch_size=5, text_batch_size=6, prompt_chunk=4)
    result = zero_shot_validate(model, tokenizer, transform, str(tmp_path / "val"), names, "cpu",
                                templates=templates, config=config)
    assert model.training  # the trainer's mode is restored
    assert result["n_images"] == 12 and result["n_classes"] == 4 and result["n_templates"] == 7
    assert result["ensemble"] == ("mean_embedding" if similarity == "global" else "mean_similarity")
    top1, per_class = _reference_top1(model, tokenizer, transform, str(tmp_path / "val"), templates)
    assert result["top1"] == pytest.approx(top1)
    dataset = load_image_folder(str(tmp_path / "val"), CLASSES)
    detailed = classify(model, tokenizer, transform, dataset, templates, "cpu", config)
    assert detailed.per_class_top1 == pytest.approx(per_class)  # per image, not just on average
    assert result["top5"] == 100.0  # 4 classes: always in the top 5
    assert result["chance"]["top1"] == 25.0


def test_zero_shot_validate_with_all_80_templates(tmp_path, tiny_parts):
    models, tokenizer, transform = tiny_parts
    names = write_image_folder(str(tmp_path), CLASSES[:2], per_class=1)
    result = zero_shot_validate(models["global"], tokenizer, transform, str(tmp_path / "val"), names, "cpu")
    assert result["n_templates"] == 80 and 0.0 <= result["top1"] <= 100.0


def test_zero_shot_validate_rejects_a_classname_count_mismatch(tmp_path, tiny_parts):
    models, tokenizer, transform = tiny_parts
    write_image_folder(str(tmp_path), CLASSES, per_class=1)
    short = tmp_path / "short.txt"
    short.write_text("红色\n蓝色\n", encoding="utf-8")
    with pytest.raises(EvalDataError, match="2 class names for 4 class folders"):
        zero_shot_validate(models["global"], tokenizer, transform, str(tmp_path / "val"), str(short), "cpu")
