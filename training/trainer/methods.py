"""The training methods of the three papers, as the step loop runs them (`--loss`, `--ranking-head`,
`--distill`; docs/train.md, "Methods").

A method turns one step's micro-batches into gradients (`backward`), updates what it keeps beside
the model after the optimiser has stepped (`after_step`), and saves that state in the checkpoint
(`state_dict`), so that a resumed run continues bit for bit:

- `ContrastiveMethod`: Wukong's InfoNCE (`--loss clip`, global or token-wise) or SigLIP's sigmoid
  loss (`--loss siglip`), with GradCache accumulation (`training.trainer.step`);
- `MomentumMethod`: BriVL's momentum encoders and key queues (`--loss moco`);
- `RankingMethod`: R2D2's pre-ranking (InfoNCE, or target-guided distillation from an EMA teacher),
  its cross-encoder ranking head on hard negatives drawn over the global batch, and feature-guided
  distillation on masked captions.

Under DDP every loss here is a mean over the rank's own rows (or, for the ranking head, a weighted
mean whose weights sum to the same on every rank), so DDP's averaging of gradients gives the
gradient of the loss over the global batch (tests/training/trainer/test_methods.py). What the ranks
must agree on is drawn from one generator seeded by (seed, step), the same on every rank.

Order of a step with a teacher (BriVL's, defined in `training.momentum`): the loss against the
queues as they were, the optimiser step, the EMA update of the teacher from the new weights, then
the step's teacher keys of every rank, in rank order, into the queues.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from training.loss import ContrastiveLoss, gather_features
from training.model import LiTModel
from training.momentum import KeyQueue, MomentumCopy, momentum_contrastive_loss
from training.ranking import CLASS_WEIGHTS, sample_hard_negatives
from training.sigmoid_loss import SigmoidLoss
from training.trainer.params import MethodConfig
from training.trainer.step import MicroBatch, StepResult, contrastive_backward

#: The modules a teacher copies: the trainable ones of a global-similarity model with a locked tower.
TEACHER_MODULES = ("text_tower", "text_proj", "image_proj")


def step_generator(seed: int, step: int) -> torch.Generator:
    """A generator that every rank seeds alike for `step` (the hard negatives must agree); -1 keeps
    it apart from the per-rank seeds of `training.trainer.train.seed_step`."""
    return torch.Generator().manual_seed(hash((seed, -1, step)) & 0x7FFFFFFF)


class SigLipTrainLoss(nn.Module):
    """SigLIP's loss with the trainer's loss interface: (image, text, [scale, bias], mask) ->
    (loss, logits of the rank's rows against its own texts)."""

    def __init__(self, rank: int = 0, world_size: int = 1):
        super().__init__()
        self.rank, self.world_size = rank, world_size
        self.loss = SigmoidLoss(rank, world_size)

    def forward(self, image: torch.Tensor, text: torch.Tensor, logit_parameters: torch.Tensor,
                text_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if text_mask is not None or logit_parameters.ndim != 1:
            raise ValueError("the sigmoid loss needs global features and a model with a logit bias")
        return self.loss(image, text, logit_parameters[0], logit_parameters[1])


class Method:
    """No state beside the model; subclasses override what they keep."""

    def backward(self, model: nn.Module, micro_batches: list[MicroBatch], autocast=None, scaler=None,
                 step: int = 0) -> StepResult:
        raise NotImplementedError

    def after_step(self, core: LiTModel) -> None:
        """After the optimiser step: teachers and queues move on."""

    def state_dict(self) -> dict | None:
        return None

    def load_state_dict(self, state: dict) -> None:
        raise ValueError("this method keeps no state, but the checkpoint holds some: was it trained with another "
                         "--loss, --ranking-head or --distill?")


class ContrastiveMethod(Method):
    def __init__(self, loss_fn: nn.Module):
        self.loss_fn = loss_fn

    def backward(self, model, micro_batches, autocast=None, scaler=None, step=0) -> StepResult:
        return contrastive_backward(model, self.loss_fn, micro_batches, autocast, scaler)


def _backward(loss: torch.Tensor, scaler) -> None:
    (scaler.scale(loss) if scaler is not None else loss).backward()


def _single(micro_batches: list[MicroBatch]) -> MicroBatch:
    if len(micro_batches) != 1:
        raise ValueError("this method takes one micro-batch per step (--accum-freq 1)")
    return micro_batches[0]


class Teacher(nn.Module):
    """An EMA copy of the trainable modules and a key queue per modality (both in checkpoints)."""

    def __init__(self, core: LiTModel, queue_size: int, momentum: float):
        super().__init__()
        self.copy = MomentumCopy({name: getattr(core, name) for name in TEACHER_MODULES}, momentum)
        self.copy.eval()  # the teacher draws no dropout: its keys depend on its weights alone
        self.image_queue = KeyQueue(queue_size, core.config.embed_dim)
        self.text_queue = KeyQueue(queue_size, core.config.embed_dim)

    @torch.no_grad()
    def image_keys(self, pooled: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.copy.copies["image_proj"](pooled), dim=-1)

    @torch.no_grad()
    def text_keys(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.copy.copies["text_tower"](input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return F.normalize(self.copy.copies["text_proj"](hidden[:, 0]), dim=-1)

    def update(self, core: LiTModel, image_keys: torch.Tensor, text_keys: torch.Tensor, world_size: int) -> None:
        """EMA from the stepped weights, then every rank's keys of the step into the queues."""
        self.copy.update({name: getattr(core, name) for name in TEACHER_MODULES})
        self.image_queue.enqueue(gather_features(image_keys.float().contiguous(), world_size))
        self.text_queue.enqueue(gather_features(text_keys.float().contiguous(), world_size))


class _TeacherMethod(Method):
    """A method with a `Teacher` whose queues take the keys of each step after the optimiser step."""

    teacher: Teacher
    world_size: int

    def after_step(self, core: LiTModel) -> None:
        if self._pending is None:
            raise RuntimeError("after_step without a backward")
        self.teacher.update(core, *self._pending, self.world_size)
        self._pending = None

    def state_dict(self) -> dict:
        return {"teacher": self.teacher.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.teacher.load_state_dict(state["teacher"])


class MomentumMethod(_TeacherMethod):
    """BriVL (`--loss moco`): CE(i2t) + CE(t2i) of the rank's rows against their pairs' momentum keys
    and the other modality's queue, at BriVL's fixed temperature (the model's, which stays frozen)."""

    def __init__(self, core: LiTModel, config: MethodConfig, world_size: int = 1):
        self.teacher = Teacher(core, config.queue_size, config.momentum).to(core.logit_scale.device)
        self.world_size = world_size
        self.temperature = float(1.0 / core.scale().detach())
        self._pending: tuple[torch.Tensor, torch.Tensor] | None = None

    def backward(self, model, micro_batches, autocast=None, scaler=None, step=0) -> StepResult:
        micro = _single(micro_batches)
        with (autocast or contextlib.nullcontext)():
            image, text, _, _ = model(*micro.inputs())
            image_keys = self.teacher.image_keys(micro.pooled)
            text_keys = self.teacher.text_keys(micro.input_ids, micro.attention_mask)
            loss = momentum_contrastive_loss(image, text, image_keys, text_keys, self.teacher.image_queue.keys,
                                             self.teacher.text_queue.keys, self.temperature)
        _backward(loss, scaler)
        self._pending = (image_keys, text_keys)
        with torch.no_grad():  # the positive (column 0) against the queue
            positive = (image * text_keys).sum(-1, keepdim=True)
            accuracy = (torch.cat([positive, image @ self.teacher.text_queue.keys.t().to(image.dtype)], 1)
                        .argmax(1) == 0).float().mean()
        return StepResult(loss.detach(), accuracy)


def mask_tokens(input_ids: torch.Tensor, attention_mask: torch.Tensor, mask_id: int, rate: float) -> torch.Tensor:
    """A copy of `input_ids` with each caption token (not [CLS], the last [SEP] or padding) replaced
    by `mask_id` with probability `rate` (drawn from torch's RNG, which the loop seeds per step)."""
    lengths = attention_mask.sum(dim=1, keepdim=True)
    positions = torch.arange(input_ids.shape[1], device=input_ids.device)[None, :]
    inner = (positions > 0) & (positions < lengths - 1)
    chosen = (torch.rand(input_ids.shape, device=input_ids.device) < rate) & inner
    return input_ids.masked_fill(chosen, mask_id)


def soft_target_loss(logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                     alpha: float) -> torch.Tensor:
    """ALBEF's momentum distillation: cross-entropy against alpha * softmax(teacher) + (1 - alpha) * one-hot."""
    targets = alpha * teacher_logits.float().softmax(dim=1) + (1 - alpha) * F.one_hot(labels, logits.shape[1]).float()
    return -(logits.float().log_softmax(dim=1) * targets).sum(dim=1).mean()


class RankingMethod(_TeacherMethod):
    """R2D2: pre-ranking (InfoNCE or target-guided distillation), the ranking head, feature-guided
    distillation; each part only when configured."""

    def __init__(self, core: LiTModel, config: MethodConfig, seed: int, mask_id: int | None,
                 rank: int = 0, world_size: int = 1):
        self.config, self.seed, self.rank, self.world_size = config, seed, rank, world_size
        self.distill_target = config.distill in ("target", "both")
        self.distill_feature = config.distill in ("feature", "both")
        if self.distill_feature and mask_id is None:
            raise ValueError("feature distillation needs a tokenizer with a [MASK] token")
        self.mask_id = mask_id
        self.teacher = (Teacher(core, config.queue_size, config.momentum).to(core.logit_scale.device)
                        if config.distill != "none" else None)
        self.contrastive = ContrastiveLoss("global", rank, world_size)
        self._pending: tuple[torch.Tensor, torch.Tensor] | None = None

    def after_step(self, core: LiTModel) -> None:
        if self.teacher is not None:
            super().after_step(core)

    def state_dict(self) -> dict | None:
        return super().state_dict() if self.teacher is not None else None

    def load_state_dict(self, state: dict) -> None:
        if self.teacher is None:
            Method.load_state_dict(self, state)
        super().load_state_dict(state)

    def _distilled_contrastive(self, image, text, scale, image_keys, text_keys) -> tuple[torch.Tensor, torch.Tensor]:
        """The rank's rows against the teacher's keys of the global batch and its queues, with soft targets."""
        text_bank = torch.cat([gather_features(text_keys, self.world_size), self.teacher.text_queue.keys.to(text.dtype)])
        image_bank = torch.cat([gather_features(image_keys, self.world_size),
                                self.teacher.image_queue.keys.to(image.dtype)])
        labels = torch.arange(image.shape[0], device=image.device) + self.rank * image.shape[0]
        logits_i2t, logits_t2i = scale * image @ text_bank.t(), scale * text @ image_bank.t()
        with torch.no_grad():
            teacher_i2t, teacher_t2i = scale.detach() * image_keys @ text_bank.t(), scale.detach() * text_keys @ image_bank.t()
        alpha = self.config.distill_alpha
        loss = (soft_target_loss(logits_i2t, teacher_i2t, labels, alpha)
                + soft_target_loss(logits_t2i, teacher_t2i, labels, alpha)) / 2
        return loss, logits_i2t.detach()

    def _ranking_loss(self, core: LiTModel, micro: MicroBatch, image, text, hidden, step: int) -> torch.Tensor:
        """The match loss of the rank's positives and one hard negative per row and direction, the
        negatives drawn over the global batch from softmax(similarity / T), positives excluded."""
        b = micro.input_ids.shape[0]
        all_image = gather_features(image.detach(), self.world_size)
        all_text = gather_features(text.detach(), self.world_size)
        generator = step_generator(self.seed, step)
        similarity = (all_image @ all_text.t()).float().cpu()
        negative_texts = sample_hard_negatives(similarity, self.config.hard_negative_temperature, generator=generator)
        negative_images = sample_hard_negatives(similarity.t(), self.config.hard_negative_temperature,
                                                generator=generator)
        mine = slice(self.rank * b, (self.rank + 1) * b)
        negative_texts = negative_texts[mine].to(micro.input_ids.device)
        negative_images = negative_images[mine].to(micro.input_ids.device)
        all_hidden = gather_features(hidden, self.world_size)
        all_mask = gather_features(micro.attention_mask, self.world_size)
        all_tokens = gather_features(micro.tokens, self.world_size)
        images = torch.cat([micro.tokens, micro.tokens, all_tokens[negative_images]])
        texts = torch.cat([hidden, all_hidden[negative_texts], hidden])
        masks = torch.cat([micro.attention_mask, all_mask[negative_texts], micro.attention_mask])
        labels = torch.cat([torch.ones(b), torch.zeros(2 * b)]).long().to(images.device)
        weights = torch.tensor(CLASS_WEIGHTS, device=images.device)
        return F.cross_entropy(core.ranking_head(images, texts, masks).float(), labels, weight=weights)

    def backward(self, model, micro_batches, autocast=None, scaler=None, step=0) -> StepResult:
        micro = _single(micro_batches)
        core: LiTModel = getattr(model, "module", model)
        b = micro.input_ids.shape[0]
        ids, mask = micro.input_ids, micro.attention_mask
        if self.distill_feature:  # the masked copies go through the same forward (DDP: one per step)
            masked = mask_tokens(ids, mask, self.mask_id, self.config.mask_rate)
            ids, mask = torch.cat([ids, masked]), torch.cat([mask, mask])
        with (autocast or contextlib.nullcontext)():
            image, texts, _, scale, hidden = model(micro.pooled, micro.tokens, ids, mask, with_hidden=True)
            text, hidden = texts[:b], hidden[:b]
            image_keys = text_keys = None
            if self.teacher is not None:
                image_keys = self.teacher.image_keys(micro.pooled).to(image.dtype)
                text_keys = self.teacher.text_keys(micro.input_ids, micro.attention_mask).to(text.dtype)
            if self.distill_target:
                loss, logits = self._distilled_contrastive(image, text, scale, image_keys, text_keys)
            else:
                loss, logits = self.contrastive(image, text, scale)
            if core.ranking_head is not None:
                loss = loss + self._ranking_loss(core, micro, image, text, hidden, step)
            if self.distill_feature:
                loss = loss + (texts[b:].float() - text_keys.float()).pow(2).sum(dim=1).mean()
        _backward(loss, scaler)
        if self.teacher is not None:
            self._pending = (image_keys, text_keys)
        labels = torch.arange(b, device=logits.device) + self.rank * b
        return StepResult(loss.detach(), (logits.argmax(dim=1) == labels).float().mean())


def build_method(core: LiTModel, config: MethodConfig, seed: int = 0, mask_id: int | None = None,
                 rank: int = 0, world_size: int = 1) -> Method:
    """The method `config` names, for a freshly built model (call before building the optimiser:
    moco freezes the temperature at BriVL's fixed value)."""
    if config.loss == "siglip":
        return ContrastiveMethod(SigLipTrainLoss(rank, world_size))
    if config.loss == "moco":
        core.logit_scale.requires_grad_(False)
        return MomentumMethod(core, config, world_size)
    if config.ranking_head or config.distill != "none":
        return RankingMethod(core, config, seed, mask_id, rank, world_size)
    return ContrastiveMethod(ContrastiveLoss(core.similarity, rank, world_size))
