"""The dataset report (python -m pipelines.report): its numbers, its files, its page in a browser."""

import io
import json
import math
import os
import shutil
import subprocess
import sys

import pytest
from PIL import Image, ImageStat

from filters import contract
from pipelines import report as report_module
from pipelines import stats as stats_module

# Captions whose jieba tokens are plain to see; Table 2 below is worked out by hand from them:
# lengths 2, 3, 3, 4, 1 -> 5 pairs, mean 13/5 = 2.6, median 3,
# std = sqrt((0.36 + 0.16 + 0.16 + 1.96 + 2.56) / 5) = sqrt(1.04);
# unique tokens: 红色 圆形 蓝色 背景 <人名> 的 照片 猫 -> 8; one caption with a masked name.
KNOWN_SHARDS = [["红色 圆形", "蓝色 圆形 背景", "<人名> 的 照片"], ["红色，红色，红色，红色", "猫"]]
XSS = "<script>alert(1)</script>"


def _jpeg(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def write_clean_shards(directory, shards, query="查询"):
    """Clean shards, one per list of captions, with small distinct images; returns the keys."""
    keys = []
    for s, captions in enumerate(shards):
        records = []
        for i, caption in enumerate(captions):
            url = f"http://example.test/{s}/{i}.jpg"
            width, height = 210 + i, 220 + s
            image = _jpeg(width, height, ((40 * i) % 256, (90 * s) % 256, 150))
            records.append({"key": contract.url_key(url), "url": url, "caption": caption,
                            "query": query, "rank": i, "page_url": "", "image": image, "width": width,
                            "height": height, "image_format": "JPEG", "sha256": f"{s}-{i}"})
            keys.append(records[-1]["key"])
        contract.write_shard(contract.join(str(directory), contract.shard_name(s)), records, contract.CLEAN_SCHEMA)
    return keys


def write_funnel(directory, kept):
    funnel = contract.build_funnel(kept + 7, [("download", {"download_failed": 4}),
                                            ("image_size", {"image_too_small": 2, "aspect_ratio": 1})])
    contract.write_json(contract.join(str(directory), "funnel.json"), funnel)


def run_report(input_dir, output, **kwargs):
    return report_module.build_report(str(input_dir), str(output), log=lambda m: None, **kwargs)


def read_page(output):
    return (output / "index.html").read_text(encoding="utf-8")


# --------------------------------------------------------------------------------------------
# Numbers and files
# --------------------------------------------------------------------------------------------


def test_a_filter_outputs_table2_and_word_cloud_are_read_not_recomputed(tmp_path):
    write_clean_shards(tmp_path / "in" / "clean", KNOWN_SHARDS)
    write_funnel(tmp_path / "in", 5)
    # stats.json as the filter would write it for a corpus other than these five captions: the
    # report must show the filter's numbers, which it cannot have computed from the shards.
    filter_stats = stats_module.CaptionStats.of(["大熊猫 吃 竹子"] * 12).table()
    contract.write_json(contract.join(str(tmp_path / "in"), "stats.json"), filter_stats)
    cloud = _jpeg(30, 20, (1, 2, 3))  # any bytes: copied, never redrawn
    (tmp_path / "in" / "wordcloud.png").write_bytes(cloud)
    result = run_report(tmp_path / "in", tmp_path / "out")
    assert result["table2"]["pairs"] == 12
    assert result["top_words"][0] == ["大熊猫", 12]
    assert (tmp_path / "out" / "wordcloud.png").read_bytes() == cloud
    assert len(result["samples"]) == 5  # the samples still come from the shards


def test_a_stats_json_that_is_not_the_filters_is_a_clear_error(tmp_path):
    write_clean_shards(tmp_path / "in" / "clean", KNOWN_SHARDS)
    write_funnel(tmp_path / "in", 5)
    contract.write_json(contract.join(str(tmp_path / "in"), "stats.json"), {"pairs": 5})
    with pytest.raises(report_module.ReportInputError, match="stats.json"):
        run_report(tmp_path / "in", tmp_path / "out")


def test_table2_matches_the_hand_computed_values(tmp_path):
    write_clean_shards(tmp_path / "in" / "clean", KNOWN_SHARDS)
    result = run_report(tmp_path / "in", tmp_path / "out")
    table = result["table2"]
    assert table["pairs"] == 5
    assert table["unique_tokens"] == 8
    assert table["tokens_per_caption"]["mean"] == pytest.approx(2.6)
    assert table["tokens_per_caption"]["std"] == pytest.approx(math.sqrt(1.04), abs=1e-4)
    assert table["tokens_per_caption"]["median"] == 3
    assert table["captions_with_masked_names"] == 1
    on_disk = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert on_disk["table2"] == table
    page = read_page(tmp_path / "out")
    for shown in ("<td class=n>5</td>", "<td class=n>8</td>", "<td class=n>2.60</td>", "<td class=n>1.02</td>",
                  "<td class=n>3</td>"):
        assert shown in page


def test_the_funnel_is_shown_as_a_table_and_a_chart(tmp_path):
    write_clean_shards(tmp_path / "in" / "clean", KNOWN_SHARDS)
    write_funnel(tmp_path / "in", kept=5)
    result = run_report(tmp_path / "in", tmp_path / "out")
    assert result["funnel"] == {"input": 12, "dropped": {"download_failed": 4, "image_too_small": 2,
                                                          "aspect_ratio": 1}, "output": 5}
    page = read_page(tmp_path / "out")
    assert 'src="funnel.png"' in page and (tmp_path / "out" / "funnel.png").stat().st_size > 1000
    assert "<td>image_too_small</td><td class=n>2</td>" in page and 'id="no-funnel"' not in page


def test_the_funnel_beside_a_clean_directory_is_found(tmp_path):
    write_clean_shards(tmp_path / "in" / "clean", KNOWN_SHARDS)
    write_funnel(tmp_path / "in", kept=5)
    assert run_report(tmp_path / "in" / "clean", tmp_path / "out")["funnel"]["output"] == 5


def test_without_funnel_json_the_page_says_so(tmp_path):
    write_clean_shards(tmp_path / "shards", KNOWN_SHARDS)  # clean shards directly, no funnel.json
    result = run_report(tmp_path / "shards", tmp_path / "out")
    page = read_page(tmp_path / "out")
    assert result["funnel"] is None
    assert 'id="no-funnel"' in page and "No funnel" in page and "funnel.json" in page
    assert "funnel.png" not in page and not (tmp_path / "out" / "funnel.png").exists()


@pytest.mark.parametrize("layout", ["missing", "empty", "empty clean/"])
def test_no_clean_shards_is_a_one_line_error_naming_the_path(tmp_path, capsys, layout):
    input_dir = tmp_path / "input"
    if layout != "missing":
        input_dir.mkdir()
    if layout == "empty clean/":
        (input_dir / "clean").mkdir()
    assert report_module.main(["--input", str(input_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(input_dir) in err and "no clean shards" in err
    assert not (input_dir / "report" / "index.html").exists()


def test_default_output_is_input_report(tmp_path):
    write_clean_shards(tmp_path / "in" / "clean", KNOWN_SHARDS)
    assert report_module.main(["--input", str(tmp_path / "in"), "--samples", "2"]) == 0
    assert (tmp_path / "in" / "report" / "index.html").exists()
    assert len(os.listdir(tmp_path / "in" / "report" / "samples")) == 2


def test_captions_and_queries_are_html_escaped(tmp_path):
    write_clean_shards(tmp_path / "in", [[XSS + "的猫", "<人名>的照片"]], query='<b onmouseover="x">查询</b>')
    run_report(tmp_path / "in", tmp_path / "out")
    page = read_page(tmp_path / "out")
    assert "<script" not in page and "<b " not in page and "<人名>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;的猫" in page
    assert "&lt;人名&gt;的照片" in page
    assert "&lt;b onmouseover=&quot;x&quot;&gt;查询&lt;/b&gt;" in page


@pytest.mark.parametrize("samples, expected", [(3, 3), (24, 5), (0, 0)])
def test_thumbnail_count_is_min_of_samples_and_pairs(tmp_path, samples, expected):
    write_clean_shards(tmp_path / "in", KNOWN_SHARDS)
    result = run_report(tmp_path / "in", tmp_path / "out", samples=samples)
    files = sorted(os.listdir(tmp_path / "out" / "samples"))
    assert len(files) == len(result["samples"]) == expected
    for name in files:
        with Image.open(tmp_path / "out" / "samples" / name) as thumbnail:
            assert thumbnail.format == "JPEG" and max(thumbnail.size) <= report_module.THUMBNAIL_SIDE
    assert read_page(tmp_path / "out").count('<img src="samples/') == expected


def test_a_rerun_with_fewer_samples_leaves_no_stale_thumbnails(tmp_path):
    write_clean_shards(tmp_path / "in", KNOWN_SHARDS)
    run_report(tmp_path / "in", tmp_path / "out", samples=5)
    run_report(tmp_path / "in", tmp_path / "out", samples=2)
    assert sorted(os.listdir(tmp_path / "out" / "samples")) == ["000.jpg", "001.jpg"]


def test_the_sample_is_reproducible_and_depends_on_the_seed(tmp_path):
    keys = write_clean_shards(tmp_path / "in", [[f"第{i}只猫" for i in range(30)], [f"第{i}只狗" for i in range(30)]])

    def sample(seed, out):
        return [s["key"] for s in run_report(tmp_path / "in", tmp_path / out, samples=6, seed=seed)["samples"]]

    first, again, other = sample(0, "a"), sample(0, "b"), sample(1, "c")
    assert first == again and len(set(first)) == 6 and set(first) <= set(keys)
    assert set(first) != set(other)
    assert (tmp_path / "a" / "samples" / "000.jpg").read_bytes() == (tmp_path / "b" / "samples" / "000.jpg").read_bytes()


def test_without_a_cjk_font_the_page_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(report_module, "find_cjk_font", lambda: None)
    monkeypatch.setattr(stats_module, "find_cjk_font", lambda: None)
    write_clean_shards(tmp_path / "in", KNOWN_SHARDS)
    result = run_report(tmp_path / "in", tmp_path / "out")
    page = read_page(tmp_path / "out")
    assert result["word_cloud"] is None
    assert 'id="no-word-cloud"' in page and "fonts-wqy-microhei" in page and 'src="wordcloud.png"' not in page
    assert (tmp_path / "out" / "caption_lengths.png").stat().st_size > 1000


def test_help_explains_itself(capsys):
    with pytest.raises(SystemExit) as exit_info:
        report_module.main(["--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    for words in ("Table 2", "funnel", "word cloud", "--samples", "--seed", "--font"):
        assert words in out


def test_the_report_imports_neither_beam_nor_torch():
    code = ("import sys, pipelines.report; "
            "print(sorted(m for m in ('apache_beam', 'torch') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert done.stdout.strip() == "[]"


# --------------------------------------------------------------------------------------------
# The page in a real browser
# --------------------------------------------------------------------------------------------

_BROKEN_IMAGES = ("return Array.from(document.images)"
                  ".filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src'));")


def _browser_binaries():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if not (chromium and chromedriver):
        pytest.skip("chromium/chromedriver not installed: apt-get install chromium chromium-driver")
    return chromium, chromedriver


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module, quit at the end."""
    chromium, chromedriver = _browser_binaries()
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-extensions", "--window-size=1280,2000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _severe(driver):
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def _not_blank(png: bytes, min_stddev: float = 8.0) -> bool:
    with Image.open(io.BytesIO(png)) as image:
        return ImageStat.Stat(image.convert("L")).stddev[0] > min_stddev


@pytest.mark.timeout(120)
@pytest.mark.e2e
def test_the_page_renders_in_headless_chromium(tmp_path, browser):
    if stats_module.find_cjk_font() is None:
        pytest.skip("no CJK font for the word cloud: apt-get install fonts-wqy-microhei")
    write_clean_shards(tmp_path / "in" / "clean", KNOWN_SHARDS + [[XSS + "的猫", "<人名>的照片"]])
    write_funnel(tmp_path / "in", kept=7)
    run_report(tmp_path / "in", tmp_path / "out", samples=6)

    browser.get((tmp_path / "out" / "index.html").as_uri())
    images = browser.execute_script("return Array.from(document.images).map(i => i.getAttribute('src'));")
    assert sorted(images) == sorted(["funnel.png", "caption_lengths.png", "wordcloud.png"]
                                    + [f"samples/{i:03d}.jpg" for i in range(6)])
    assert browser.execute_script(_BROKEN_IMAGES) == []
    assert _severe(browser) == []
    assert browser.execute_script("return document.scripts.length;") == 0  # the escaped caption ran nothing
    for element_id in ("funnel-chart", "word-cloud", "length-chart"):
        element = browser.find_element("id", element_id)
        assert element.is_displayed() and element.size["width"] > 100 and element.size["height"] > 100
        assert _not_blank(element.screenshot_as_png)
    screenshot = tmp_path / "report.png"
    assert browser.save_screenshot(str(screenshot))
    assert _not_blank(screenshot.read_bytes())

    # The checks above can fail: the same page with one thumbnail gone is caught by both.
    shutil.copytree(tmp_path / "out", tmp_path / "broken")
    os.remove(tmp_path / "broken" / "samples" / "000.jpg")
    browser.get((tmp_path / "broken" / "index.html").as_uri())
    assert browser.execute_script(_BROKEN_IMAGES) == ["samples/000.jpg"]
    assert any("000.jpg" in entry["message"] for entry in _severe(browser))
