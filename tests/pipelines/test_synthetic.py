import collections
import io

from PIL import Image

from filters import contract
from pipelines import synthetic


def test_generator_is_deterministic_for_a_seed():
    a = synthetic.generate_pairs(300, seed=7)
    b = synthetic.generate_pairs(300, seed=7)
    c = synthetic.generate_pairs(300, seed=8)
    assert [p.to_raw_record() for p in a] == [p.to_raw_record() for p in b]
    assert [p.to_raw_record() for p in a] != [p.to_raw_record() for p in c]


def test_generator_covers_every_drop_reason():
    pairs = synthetic.generate_pairs(300, seed=1)
    reasons = {p.expected_reason for p in pairs}
    assert set(tuple(contract.DropReason)) <= reasons
    assert None in reasons  # and clean pairs
    assert any(p.has_person_name and p.expected_reason is None for p in pairs)


def test_defects_are_what_they_claim():
    pairs = synthetic.generate_pairs(400, seed=2)
    by_reason = collections.defaultdict(list)
    for p in pairs:
        by_reason[p.expected_reason].append(p)
    for p in by_reason["image_too_small"]:
        assert min(p.width, p.height) <= 200
    for p in by_reason["aspect_ratio"]:
        assert min(p.width, p.height) > 200 and max(p.width, p.height) / min(p.width, p.height) > 3
    for p in by_reason["image_corrupt"]:
        image = Image.open(io.BytesIO(p.image))
        assert image.size == (p.width, p.height)  # the header reads ...
        try:
            image.load()
        except OSError:
            pass
        else:
            raise AssertionError("a corrupt image decoded fully")
    assert len(by_reason["frequent_caption"]) == synthetic.FREQUENT_TIMES > 10
    assert {p.caption for p in by_reason["frequent_caption"]} == {synthetic.FREQUENT_CAPTION}
    first_with_url = {}
    for p in pairs:
        first_with_url.setdefault(p.url, p)
    for p in by_reason["duplicate_url"]:
        first = first_with_url[p.url]
        assert first.index < p.index and first.expected_reason is None
    digests = collections.Counter(p.to_raw_record()["sha256"] for p in pairs if p.image)
    for p in by_reason["duplicate_image"]:
        assert digests[p.to_raw_record()["sha256"]] >= 2
    for p in by_reason["download_failed"]:
        assert p.to_raw_record()["image"] is None and p.status != contract.DownloadStatus.SUCCESS


def test_clean_images_show_their_caption():
    pairs = [p for p in synthetic.generate_pairs(200, seed=3) if p.expected_reason is None][:20]
    for p in pairs:
        image = Image.open(io.BytesIO(p.image)).convert("RGB")
        scene = p.scene
        assert scene.colour in p.caption and scene.shape in p.caption and scene.background in p.caption
        assert synthetic.COUNTS[scene.count] in p.caption
        # The background colour fills the corners; the shapes' colour appears in the image.
        bg = synthetic.BACKGROUNDS[scene.background]
        corner = image.getpixel((1, 1))
        assert sum(abs(a - b) for a, b in zip(corner, bg)) < 40
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
        target = synthetic.COLOURS[scene.colour]
        share = sum(n for n, c in colours if sum(abs(a - b) for a, b in zip(c, target)) < 60) / (p.width * p.height)
        if target != bg:
            assert share > 0.05


def test_write_raw_shards_round_trip(tmp_path):
    pairs = synthetic.generate_pairs(250, seed=4)
    paths = synthetic.write_raw_shards(pairs, str(tmp_path), rows_per_shard=100)
    assert len(paths) == 3
    rows = [r for path in paths for r in contract.read_shard(path, contract.RAW_SCHEMA).to_pylist()]
    assert rows == [p.to_raw_record() for p in pairs]


def test_cli_writes_shards(tmp_path, capsys):
    assert synthetic.main(["--output", str(tmp_path / "raw"), "--pairs", "150", "--rows-per-shard", "100"]) == 0
    assert len(contract.list_shards(str(tmp_path / "raw"))) == 2
    assert "150 pairs" in capsys.readouterr().err
