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
