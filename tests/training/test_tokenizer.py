"""The Chinese BERT tokenizer: offline vocabulary of 21,128 entries, 32 tokens with [CLS]."""

import pytest

from training.tokenizer import CHINESE_BERT_VOCAB_SIZE, ChineseTokenizer, TokenizerError, default_tokenizer


def test_default_vocabulary_has_21128_entries():
    tok = default_tokenizer()
    assert tok.vocab_size == CHINESE_BERT_VOCAB_SIZE == 21128
    assert tok.context_length == 32


def test_chinese_characters_are_split_and_rows_are_cls_tokens_sep_padding():
    tok = default_tokenizer()
    assert tok.tokens("两个红色圆形") == ["[CLS]", "两", "个", "红", "色", "圆", "形", "[SEP]"]
    ids, mask = tok(["两个红色圆形", ""])
    assert ids.shape == mask.shape == (2, 32)
    assert ids[0, 0] == tok.cls_token_id and ids[0, 7] == tok.sep_token_id and ids[0, 8] == tok.pad_token_id
    assert mask[0].tolist() == [1] * 8 + [0] * 24
    assert mask[1].sum() == 2  # [CLS] [SEP]


def test_long_captions_are_truncated_to_32_with_sep_last():
    tok = default_tokenizer()
    ids, mask = tok(["长" * 100])
    assert mask.sum() == 32 and ids[0, -1] == tok.sep_token_id


def test_a_vocabulary_of_the_wrong_size_is_a_clear_error(tmp_path):
    small = tmp_path / "vocab.txt"
    small.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "红", "色"]) + "\n", encoding="utf-8")
    with pytest.raises(TokenizerError, match="7 entries, expected 21128"):
        ChineseTokenizer(str(small))
    assert ChineseTokenizer(str(small), expected_vocab_size=None).vocab_size == 7


def test_a_single_string_is_refused():
    with pytest.raises(TypeError):
        default_tokenizer()("一个字符串")
