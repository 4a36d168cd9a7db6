"""Image rules: size and aspect at their boundaries."""

import pytest

from filters.image import ImageConfig, check_image


@pytest.mark.parametrize("width, height, expected", [
    (200, 300, "image_too_small"),   # 200 is dropped ...
    (300, 200, "image_too_small"),
    (201, 201, None),                # ... and 201 kept
    (200, 200, "image_too_small"),
    (0, 500, "image_too_small"),
    (-5, 500, "image_too_small"),
    (None, 500, "image_too_small"),
    (603, 201, None),                # ratio exactly 3 is kept
    (201, 603, None),
    (604, 201, "aspect_ratio"),      # just over 3
    (201, 604, "aspect_ratio"),
    (904, 301, "aspect_ratio"),
    (900, 300, None),
    (1920, 1080, None),
    (150, 2000, "image_too_small"),  # too small wins over the ratio (first failing rule)
])
def test_check_image_boundaries(width, height, expected):
    assert check_image(width, height) == expected


def test_check_image_config_changes_thresholds():
    assert check_image(150, 150, ImageConfig(min_side=100)) is None
    assert check_image(500, 201, ImageConfig(max_aspect_ratio=2.0)) == "aspect_ratio"


@pytest.mark.parametrize("kwargs", [{"min_side": -1}, {"max_aspect_ratio": 0.5}])
def test_image_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        ImageConfig(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"min_side": -1}, "min_side must be >= 0, got -1"),
    ({"max_aspect_ratio": 0.99}, "max_aspect_ratio must be >= 1, got 0.99"),
    ({"max_aspect_ratio": float("nan")}, "max_aspect_ratio must be >= 1, got nan"),
])
def test_image_config_errors_name_the_field_and_value(kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        ImageConfig(**kwargs)


def test_image_config_accepts_its_boundaries():
    # min_side 0 keeps every image with a size; ratio 1 keeps only squares
    config = ImageConfig(min_side=0, max_aspect_ratio=1.0)
    assert check_image(1, 1, config) is None
    assert check_image(0, 1, config) == "image_too_small"
    assert check_image(2, 1, config) == "aspect_ratio"
    assert check_image(450, 300, ImageConfig(max_aspect_ratio=1.5)) is None
    assert check_image(451, 300, ImageConfig(max_aspect_ratio=1.5)) == "aspect_ratio"
