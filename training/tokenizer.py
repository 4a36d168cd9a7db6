"""The Chinese text tokenizer: Chinese BERT WordPiece over 21,128 entries, 32 tokens with [CLS].

Chinese BERT splits every Han character into its own token and lower-cases Latin text; we use
transformers' BERT tokenizer for that, fed with the vocabulary file the `cn-clip` package ships
(MIT licensed), so no download is needed. A hub name or a local tokenizer directory also works.

The person-name mask of the filter stage, `<人名>` (filters.contract.NAME_MASK), is one token: it
maps to the reserved vocabulary entry `[unused1]` (id 1 in the cn-clip / bert-base-chinese
vocabulary), never used by the pretrained text tower. Without this WordPiece cuts it into `<`, `人`,
`名`, `>`, four of the 32 positions, and the model reads the literal characters 人名. Training and
evaluation share this tokenizer, so both see the same id.

A trap this module guards against: in transformers 5.x, `BertTokenizer(vocab_file=path)` silently
ignores the file and gives a 5-token vocabulary. We pass `vocab=path` and check the size.
"""

from __future__ import annotations

import functools
import os

import torch

from filters.contract import NAME_MASK

#: Entries in the Chinese BERT vocabulary (bert-base-chinese, cn_clip, Wukong).
CHINESE_BERT_VOCAB_SIZE = 21128
#: Tokens per caption, [CLS] and [SEP] included (the paper: at most 32 tokens).
CONTEXT_LENGTH = 32
#: The reserved vocabulary entry that stands for NAME_MASK (`<人名>`), one id.
NAME_MASK_TOKEN = "[unused1]"


class TokenizerError(ValueError):
    """The vocabulary could not be found or is not the Chinese BERT one."""


def cn_clip_vocab_path() -> str:
    """The path of the vocab.txt that the installed cn-clip package carries."""
    try:
        import cn_clip  # noqa: PLC0415 - optional at import time, needed only here
    except ImportError as err:
        raise TokenizerError(
            "the default vocabulary comes from the cn-clip package (pip install cn-clip); "
            "or pass a vocab.txt path / tokenizer directory"
        ) from err
    path = os.path.join(os.path.dirname(cn_clip.__file__), "clip", "vocab.txt")
    if not os.path.isfile(path):
        raise TokenizerError(f"cn-clip is installed but has no vocabulary at {path}")
    return path


class ChineseTokenizer:
    """Callable tokenizer: `tok(texts) -> (input_ids [N, 32], attention_mask [N, 32])`, int64.

    Each row is `[CLS] tokens... [SEP]` truncated to `context_length` and padded with [PAD] (id 0);
    `attention_mask` is 1 on real tokens ([CLS] and [SEP] included) and 0 on padding.

    `source` is a vocab.txt file, a local tokenizer directory, or a hub name (online only).
    `expected_vocab_size` is checked (None skips the check) so a wrong file fails loudly.
    """

    def __init__(self, source: str | None = None, context_length: int = CONTEXT_LENGTH,
                 expected_vocab_size: int | None = CHINESE_BERT_VOCAB_SIZE):
        from transformers import BertTokenizer  # noqa: PLC0415 - heavy import, keep module import cheap

        if context_length < 2:
            raise TokenizerError(f"context_length must be at least 2 ([CLS] and [SEP]), got {context_length}")
        source = source or cn_clip_vocab_path()
        if os.path.isfile(source):
            # `vocab=` (not `vocab_file=`): see the module docstring.
            self._tok = BertTokenizer(vocab=source, do_lower_case=True, tokenize_chinese_chars=True)
        else:  # a tokenizer directory, or a hub name (needs the network)
            try:
                self._tok = BertTokenizer.from_pretrained(source)
            except OSError as err:
                raise TokenizerError(f"cannot load a tokenizer from {source!r}: {err}") from err
        self.source = source
        self.vocab_size: int = len(self._tok)
        self.context_length: int = context_length
        if expected_vocab_size is not None and self.vocab_size != expected_vocab_size:
            raise TokenizerError(
                f"vocabulary {source} has {self.vocab_size} entries, expected {expected_vocab_size} "
                "(the Chinese BERT WordPiece vocabulary)"
            )
        self.pad_token_id = int(self._tok.pad_token_id)
        self.cls_token_id = int(self._tok.cls_token_id)
        self.sep_token_id = int(self._tok.sep_token_id)
        # [MASK] (103 in the Chinese BERT vocabulary); None for a vocabulary without one
        self.mask_token_id = int(self._tok.mask_token_id) if self._tok.mask_token_id is not None else None
        self.name_mask_id = self._reserve_name_mask()

    def _reserve_name_mask(self) -> int | None:
        """Make NAME_MASK_TOKEN one unsplittable token with its existing id (no new entry, so the
        vocabulary size is unchanged). None for a vocabulary without it: the mask is then text."""
        vocab = self._tok.get_vocab()
        if NAME_MASK_TOKEN not in vocab:
            return None
        self._tok.add_special_tokens({"additional_special_tokens": [NAME_MASK_TOKEN]})
        if len(self._tok) != self.vocab_size or self._tok.convert_tokens_to_ids(NAME_MASK_TOKEN) != vocab[NAME_MASK_TOKEN]:
            raise TokenizerError(f"could not reserve {NAME_MASK_TOKEN} for {NAME_MASK} without a new entry")
        return int(vocab[NAME_MASK_TOKEN])

    def _with_reserved_mask(self, text: str) -> str:
        if self.name_mask_id is None or NAME_MASK not in text:
            return text
        return text.replace(NAME_MASK, NAME_MASK_TOKEN)

    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(texts, str):
            raise TypeError("ChineseTokenizer takes a list of strings, not one string")
        texts = [self._with_reserved_mask(t) if t is not None else "" for t in texts]
        out = self._tok(list(texts), padding="max_length", truncation=True, max_length=self.context_length,
                        return_tensors="pt", return_token_type_ids=False)
        return out["input_ids"].long(), out["attention_mask"].long()

    def tokens(self, text: str) -> list[str]:
        """The WordPiece tokens of one text with [CLS]/[SEP], for inspection."""
        ids, mask = self([text])
        return self._tok.convert_ids_to_tokens(ids[0][mask[0].bool()].tolist())


@functools.lru_cache(maxsize=4)
def _cached(source: str | None, context_length: int) -> ChineseTokenizer:
    return ChineseTokenizer(source, context_length)


def default_tokenizer() -> ChineseTokenizer:
    """The offline default: cn-clip's vocab.txt, 32 tokens. Cached, so cheap to call again."""
    return _cached(None, CONTEXT_LENGTH)


def load_tokenizer(source: str | None = None, context_length: int = CONTEXT_LENGTH) -> ChineseTokenizer:
    """A tokenizer for `source` (None: the cn-clip vocabulary), cached per (source, length)."""
    return _cached(source, context_length)
