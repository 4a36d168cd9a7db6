"""The person-name mask `<人名>` is one token of the Chinese BERT vocabulary, the same id every time."""

from filters.contract import NAME_MASK
from training.tokenizer import NAME_MASK_TOKEN, default_tokenizer, load_tokenizer


def _real_ids(tok, text):
    ids, mask = tok([text])
    return ids[0][mask[0].bool()].tolist()


def test_the_mask_is_exactly_one_reserved_id():
    tok = default_tokenizer()
    assert NAME_MASK == "<人名>" and NAME_MASK_TOKEN == "[unused1]"
    assert tok.name_mask_id == 1  # [unused1] in cn-clip's 21,128-entry vocabulary
    assert _real_ids(tok, NAME_MASK) == [tok.cls_token_id, 1, tok.sep_token_id]
    assert tok.vocab_size == 21128  # reserved, not added


def test_the_id_is_stable_across_tokenizers_and_positions():
    first, second = default_tokenizer(), load_tokenizer(None, 16)
    assert first.name_mask_id == second.name_mask_id == 1
    for text in (NAME_MASK + "在台上", "记者" + NAME_MASK + "报道", "合影：" + NAME_MASK + "和" + NAME_MASK):
        assert _real_ids(first, text).count(1) == text.count(NAME_MASK)


def test_text_around_the_mask_is_tokenised_as_without_it():
    tok = default_tokenizer()
    for before, after in (("记者", "在灾区现场报道"), ("Nike 跑步鞋 ", " size 42"), ("", "的婚纱照"), ("主持人", "")):
        with_mask = _real_ids(tok, before + NAME_MASK + after)
        assert with_mask == _real_ids(tok, before)[:-1] + [1] + _real_ids(tok, after)[1:]
    assert tok.tokens("记者" + NAME_MASK + "在灾区") == ["[CLS]", "记", "者", "[unused1]", "在", "灾", "区", "[SEP]"]


def test_the_mask_saves_positions_of_the_32():
    tok = default_tokenizer()
    assert len(_real_ids(tok, NAME_MASK * 5)) == 7  # [CLS] + 5 + [SEP], not 4 tokens each
