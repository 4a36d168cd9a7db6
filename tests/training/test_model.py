"""The LiT model: locked tower, shapes, normalisation, token masks, reducer, bad config."""

import math

import pytest
import torch

from tests.support.training import random_inputs, tiny_model
from training.model import LiTConfig, LiTModel, ModelConfigError, pool_tokens


def test_encoders_give_l2_normalised_features_of_the_embedding_size():
    model = tiny_model().eval()
    pixels = torch.randn(3, 3, 64, 64)
    batch = random_inputs(model, 3)
    image = model.encode_image(pixels)
    text = model.encode_text(batch.input_ids, batch.attention_mask)
    assert image.shape == text.shape == (3, 32)
    assert torch.allclose(image.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(text.norm(dim=-1), torch.ones(3), atol=1e-5)
    tokens = model.encode_image_tokens(pixels)
    assert tokens.shape == (3, 4, 32)  # resnet18 at 64 px: a 2x2 grid
    assert torch.allclose(tokens.norm(dim=-1), torch.ones(3, 4), atol=1e-5)


def test_text_token_mask_excludes_cls_and_padding():
    model = tiny_model().eval()
    ids = torch.tensor([[101, 5, 6, 102, 0, 0], [101, 7, 102, 0, 0, 0]])
    mask = (ids != 0).long()
    tokens, valid = model.encode_text_tokens(ids, mask)
    assert tokens.shape == (2, 6, 32) and valid.dtype == torch.bool
    assert valid.tolist() == [[False, True, True, True, False, False], [False, True, True, False, False, False]]


def test_the_temperature_starts_at_0_07_and_is_clamped():
    model = tiny_model()
    assert model.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    assert model.scale().item() == pytest.approx(1 / 0.07, rel=1e-5)
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    assert model.scale().item() == pytest.approx(100.0)


def test_the_image_tower_is_locked_and_stays_in_eval_mode():
    model = tiny_model()
    assert not any(p.requires_grad for p in model.image_tower.parameters())
    model.train()
    assert model.training and model.text_tower.training and not model.image_tower.training
    stats = {k: v.clone() for k, v in model.image_tower.state_dict().items()}
    pooled, _ = model.image_tower_outputs(torch.randn(4, 3, 64, 64) * 5 + 3)
    assert not pooled.requires_grad
    for key, value in model.image_tower.state_dict().items():
        assert torch.equal(value, stats[key]), key  # BatchNorm running statistics did not move


def test_vit_tokens_leave_out_the_cls_token_and_can_be_pooled():
    model = LiTModel(LiTConfig.tiny(image_tower="vit_tiny_patch16_224", image_size=64)).eval()
    pooled, tokens = model.image_tower_outputs(torch.randn(2, 3, 64, 64))
    assert pooled.shape == (2, 192) and tokens.shape == (2, 16, 192)  # 4x4 patches, no [CLS]
    features = model.image_tower.forward_features(torch.zeros(1, 3, 64, 64))
    assert torch.equal(model.image_tower_outputs(torch.zeros(1, 3, 64, 64))[1], features[:, 1:])
    assert pool_tokens(tokens, 4).shape == (2, 4, 192)
    assert torch.allclose(pool_tokens(tokens, 1)[:, 0], tokens.mean(dim=1), atol=1e-5)


def test_token_reducer_gives_the_asked_number_of_tokens():
    model = tiny_model(similarity="token_wise", token_reducer_tokens=3)
    batch = random_inputs(model, 2)
    image, text, mask, scale = model(*batch.inputs())
    assert image.shape == (2, 3, 32) and text.shape == (2, 12, 32) and mask.shape == (2, 12)
    assert any(p.requires_grad for p in model.token_reducer.parameters())


def test_an_unknown_timm_name_is_a_clear_error():
    with pytest.raises(ModelConfigError, match="no model named 'resnet_does_not_exist'"):
        LiTModel(LiTConfig.tiny(image_tower="resnet_does_not_exist"))


@pytest.mark.parametrize("bad", [dict(similarity="cosine"), dict(text_width=65), dict(image_token_pool=5),
                                 dict(token_reducer_tokens=4), dict(init_temperature=0.0)])
def test_bad_configs_are_refused(bad):
    with pytest.raises(ValueError):
        LiTConfig.tiny(**bad)


def test_paper_defaults():
    config = LiTConfig()
    assert (config.text_layers, config.text_width, config.text_heads) == (12, 768, 12)
    assert (config.embed_dim, config.context_length, config.vocab_size) == (256, 32, 21128)
    assert config.init_temperature == 0.07 and config.text_checkpoint is None


def test_a_local_weights_file_loads_the_tower_offline(tmp_path):
    import timm

    torch.manual_seed(5)
    source = timm.create_model("resnet18", num_classes=1000)  # a classifier checkpoint, as downloaded
    torch.save(source.state_dict(), tmp_path / "resnet18.pth")
    model = LiTModel(LiTConfig.tiny(image_weights=str(tmp_path / "resnet18.pth")))
    expected = source.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in model.image_tower.state_dict().items())
    assert not any(p.requires_grad for p in model.image_tower.parameters())
    with pytest.raises(ModelConfigError, match="not found"):
        LiTModel(LiTConfig.tiny(image_weights=str(tmp_path / "missing.pth")))


def test_swin_tokens_are_its_final_grid_and_its_global_feature_their_mean():
    model = LiTModel(LiTConfig.tiny(image_tower="swin_tiny_patch4_window7_224", image_size=None)).eval()
    pooled, tokens = model.image_tower_outputs(torch.randn(1, 3, 224, 224))
    assert tokens.shape == (1, 49, 768)  # the 7x7 grid of the last stage, channels last
    assert torch.allclose(pooled, tokens.mean(dim=1), atol=1e-5)
