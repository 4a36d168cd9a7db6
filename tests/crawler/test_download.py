import hashlib
import io

import pytest
from PIL import Image

from crawler.download import DownloadConfig, ResizeConfig, download_sync, noai_requested
from crawler.errors import UnsafeDestination
from crawler.local_engine import Catalog
from crawler.safety import AllowList, BadUrl, check_destination, is_public_address
from filters.contract.images import DecompressionBomb, NotAnImage
from filters.contract.images import read_header as inspect_image
from tests.support.images import entry, jpeg, png_claiming


def _config(engine, **kw):
    kw.setdefault("allow_hosts", (engine.allow_host,))
    return DownloadConfig(per_host_concurrency=16, connect_timeout_s=2, read_timeout_s=0.5, total_timeout_s=2,
                          backoff_s=0.01, backoff_max_s=0.02, max_bytes=200_000, **kw)


def _url(engine, path):
    return f"{engine.base_url}/img/{path}"


def test_success_reads_size_and_format_from_the_header_and_hashes_the_bytes(serve):
    data = jpeg(640, 360)
    engine = serve(Catalog({"q": [entry("a.jpg", image=data)]}))
    [result] = download_sync([_url(engine, "a.jpg")], _config(engine))
    assert (result.status, result.width, result.height, result.image_format) == ("success", 640, 360, "JPEG")
    assert result.image == data and result.sha256 == hashlib.sha256(data).hexdigest()


def test_a_truncated_image_with_a_good_header_downloads_the_filter_judges_it(serve):
    data = jpeg(300, 300)
    data = data[: len(data) // 2]
    engine = serve(Catalog({"q": [entry("t.jpg", image=data)]}))
    [result] = download_sync([_url(engine, "t.jpg")], _config(engine))
    assert (result.status, result.width, result.height) == ("success", 300, 300)


@pytest.mark.parametrize("behaviour, status, words", [
    ("404", "http_error", "HTTP 404"),
    ("500", "http_error", "HTTP 500"),
    ("noai", "noai", "noai"),
    ("html", "not_an_image", "text/html"),
    ("too_large", "too_large", "larger than 200000"),
    ("robots", "robots_disallowed", "robots.txt"),
    ("stall", "timeout", "timed out"),
])
def test_each_failure_is_a_status_with_a_message(serve, behaviour, status, words):
    engine = serve(Catalog({"q": [entry("x.jpg", behaviour)]}, stall_s=3))
    url = f"{engine.base_url}/img/private/x.jpg" if behaviour == "robots" else _url(engine, "x.jpg")
    [result] = download_sync([url], _config(engine, retries=0))
    assert result.status == status
    assert words in result.error_message
    assert result.image is None and result.width is None and result.sha256 is None


def test_robots_can_be_switched_off(serve):
    engine = serve(Catalog({"q": [entry("x.jpg", "robots")]}))
    [result] = download_sync([f"{engine.base_url}/img/private/x.jpg"], _config(engine, respect_robots=False))
    assert result.status == "success"


def test_transient_errors_are_retried_and_other_4xx_are_not(serve):
    engine = serve(Catalog({"q": [entry("f.jpg", "flaky"), entry("g.jpg", "flaky"), entry("n.jpg", "404"),
                                  entry("e.jpg", "500")]}))
    flaky_no_retry, flaky, missing, broken = download_sync(
        [_url(engine, "f.jpg")], _config(engine, retries=0)) + download_sync(
        [_url(engine, p) for p in ("g.jpg", "n.jpg", "e.jpg")], _config(engine, retries=2))
    assert flaky_no_retry.status == "http_error" and "503" in flaky_no_retry.error_message
    assert flaky.status == "success" and engine.image_requests["g.jpg"] == 2
    assert missing.status == "http_error" and engine.image_requests["n.jpg"] == 1
    assert broken.status == "http_error" and engine.image_requests["e.jpg"] == 3


def test_redirects_are_followed_within_the_engine(serve):
    catalog = Catalog({"q": [entry("r.jpg", "redirect", redirect_to="moved/r.jpg")]},
                      hidden=[entry("moved/r.jpg", image=jpeg(400, 300))])
    engine = serve(catalog)
    [result] = download_sync([_url(engine, "r.jpg")], _config(engine))
    assert (result.status, result.width) == ("success", 400)


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:1/x.jpg",
                                    "http://[::1]:1/x.jpg", "http://10.0.0.1/x.jpg"])
def test_redirects_to_non_public_addresses_are_refused(serve, target):
    engine = serve(Catalog({"q": [entry("u.jpg", "redirect_unsafe", redirect_to=target)]}))
    [result] = download_sync([_url(engine, "u.jpg")], _config(engine))
    assert result.status == "unsafe_destination"
    assert "not on --allow-host" in result.error_message


def test_a_loopback_port_not_on_the_allow_list_is_refused(serve):
    engine = serve(Catalog({"q": [entry("a.jpg")]}))
    other_port = DownloadConfig(allow_hosts=(f"127.0.0.1:{engine.port + 1}",))
    by_name = f"http://localhost:{engine.port}/img/a.jpg"
    results = download_sync([_url(engine, "a.jpg"), by_name], _config(engine, allow_hosts=other_port.allow_hosts))
    assert [r.status for r in results] == ["unsafe_destination", "unsafe_destination"]
    assert engine.image_requests["a.jpg"] == 0  # never connected
    assert download_sync([by_name], _config(engine, allow_hosts=(f"localhost:{engine.port}",)))[0].status == "success"


def test_bad_urls_are_a_status(serve):
    engine = serve(Catalog({"q": []}))
    results = download_sync(["ftp://example.com/a.jpg", "not a url", "http:///nohost", "file:///etc/passwd"],
                            _config(engine))
    assert [r.status for r in results] == ["bad_url"] * 4


def test_a_host_name_that_cannot_be_encoded_is_a_status_not_a_crash(serve):
    # Empty and over-long DNS labels fail IDNA encoding before any lookup leaves the machine.
    engine = serve(Catalog({"q": [entry("a.jpg")]}))
    bad = ["http://a..com/x.jpg", "http://" + "a" * 70 + ".com/y.jpg"]
    results = download_sync([*bad, _url(engine, "a.jpg")], _config(engine, respect_robots=False))
    assert [r.url for r in results] == [*bad, _url(engine, "a.jpg")]
    assert all(r.status in ("connection_error", "bad_url", "error") for r in results[:2])
    assert all(r.error_message for r in results[:2])
    assert results[2].status == "success"


def test_decompression_bomb_is_refused_from_the_header(serve):
    bomb = png_claiming(30000, 30000)  # 900M pixels: more than twice Pillow's limit
    assert len(bomb) < 100
    engine = serve(Catalog({"q": [entry("b.png", image=bomb, content_type="image/png")]}))
    [result] = download_sync([_url(engine, "b.png")], _config(engine))
    assert result.status == "decompression_bomb"
    with pytest.raises(DecompressionBomb):
        inspect_image(bomb)


def test_octet_stream_is_judged_by_the_bytes(serve):
    engine = serve(Catalog({"q": [entry("o.bin", content_type="application/octet-stream"),
                                  entry("t.bin", image=b"just text", content_type="application/octet-stream")]}))
    ok, text = download_sync([_url(engine, "o.bin"), _url(engine, "t.bin")], _config(engine))
    assert ok.status == "success"
    assert text.status == "not_an_image"


def test_order_of_results_follows_the_input_under_concurrency(serve):
    entries = [entry(f"{i}.jpg", "slow" if i % 3 == 0 else "ok", image=jpeg(210 + i, 210)) for i in range(30)]
    engine = serve(Catalog({"q": entries}, slow_s=0.05))
    results = download_sync([_url(engine, f"{i}.jpg") for i in range(30)], _config(engine, concurrency=8))
    assert [r.width for r in results] == [210 + i for i in range(30)]


def test_iter_ordered_streams_in_input_order_with_a_bounded_window(serve):
    import asyncio

    from crawler.download import Downloader

    entries = [entry(f"{i}.jpg", "slow" if i % 4 == 0 else "ok", image=jpeg(210 + i, 210)) for i in range(20)]
    engine = serve(Catalog({"q": entries}, slow_s=0.05))

    async def run():
        async with Downloader(_config(engine, concurrency=4)) as downloader:
            return [r.width async for r in downloader.iter_ordered((_url(engine, f"{i}.jpg") for i in range(20)),
                                                                  window=3)]

    assert asyncio.run(run()) == [210 + i for i in range(20)]


def test_optional_resize_uses_img2dataset_resizer(serve):
    engine = serve(Catalog({"q": [entry("a.jpg", image=jpeg(640, 480))]}))
    resize = ResizeConfig(image_size=64, resize_mode="center_crop", encode_format="png", encode_quality=9)
    [result] = download_sync([_url(engine, "a.jpg")], _config(engine, resize=resize))
    assert (result.status, result.width, result.height, result.image_format) == ("success", 64, 64, "PNG")
    assert Image.open(io.BytesIO(result.image)).size == (64, 64)


def test_noai_header_parsing():
    assert noai_requested(["noai"]) and noai_requested(["noindex, NoImageAI"]) and noai_requested(["otherbot: noai"])
    assert not noai_requested(["noindex, nofollow"]) and not noai_requested([])


def test_address_rules():
    for address in ("127.0.0.1", "10.1.2.3", "192.168.0.1", "172.16.0.1", "169.254.169.254", "224.0.0.1",
                    "0.0.0.0", "::1", "fe80::1", "::ffff:127.0.0.1"):
        assert not is_public_address(address), address
    assert is_public_address("8.8.8.8") and is_public_address("2001:4860:4860::8888")
    allow = AllowList.parse(["127.0.0.1:8000", "LOCALHOST", "[::1]:9000"])
    assert allow.allows("127.0.0.1", 8000) and not allow.allows("127.0.0.1", 8001)
    assert allow.allows("localhost", 1234) and allow.allows("::1", 9000)
    check_destination("http://127.0.0.1:8000/a.jpg", allow)
    with pytest.raises(UnsafeDestination):
        check_destination("http://127.0.0.1:8001/a.jpg", allow)
    with pytest.raises(BadUrl):
        check_destination("gopher://x/", allow)


def test_inspect_image_rejects_non_images():
    for data in (b"", b"<html></html>", jpeg(10, 10)[:20]):
        with pytest.raises(NotAnImage):
            inspect_image(data)


@pytest.mark.parametrize("kw", [{"concurrency": 0}, {"max_bytes": 0}, {"read_timeout_s": 0}, {"retries": -1},
                                {"allow_hosts": ("127.0.0.1:x",)}, {"user_agent_token": " "}])
def test_download_config_rejects_bad_values(kw):
    with pytest.raises(ValueError):
        DownloadConfig(**kw)


@pytest.mark.parametrize("kw", [{"resize_mode": "stretch"}, {"encode_format": "gif"}, {"image_size": 0},
                                {"encode_format": "png", "encode_quality": 95}])
def test_resize_config_rejects_bad_values(kw):
    with pytest.raises(ValueError):
        ResizeConfig(**kw)


def test_robots_rules_for_unreadable_files():
    import asyncio

    from crawler.robots import RobotsCache

    answers = {"http://a.example/robots.txt": (200, b"User-agent: wukong-pipeline\nDisallow: /x/\n"),
               "http://b.example/robots.txt": (404, b""), "http://c.example/robots.txt": (503, b""),
               "http://d.example/robots.txt": (0, b"")}
    fetched = []

    async def fetch(url):
        fetched.append(url)
        return answers[url]

    async def run():
        cache = RobotsCache(fetch, "wukong-pipeline")
        return [await cache.allowed(u) for u in ("http://a.example/x/1.jpg", "http://a.example/y/1.jpg",
                                                  "http://b.example/x/1.jpg", "http://c.example/1.jpg",
                                                  "http://d.example/1.jpg", "http://a.example/x/2.jpg")]

    assert asyncio.run(run()) == [False, True, True, False, False, False]
    assert len(fetched) == 4  # one fetch per host


def test_the_crawl_and_the_filter_agree_on_the_pixel_cap(serve):
    """One cap (filters.contract.images.MAX_PIXELS): over it the crawl says decompression_bomb and
    the filter image_corrupt; an image whose header passes but whose pixels do not decode is a
    crawl success and an image_corrupt drop, never a crash."""
    from filters.contract.images import MAX_PIXELS
    from filters.rules import Pair, RuleSet

    over = png_claiming(8192, MAX_PIXELS // 8192 + 1)
    data = jpeg(300, 300)
    truncated = data[: len(data) // 2]
    engine = serve(Catalog({"q": [entry("over.png", image=over, content_type="image/png"),
                                  entry("cut.jpg", image=truncated)]}))
    over_result, cut_result = download_sync([_url(engine, "over.png"), _url(engine, "cut.jpg")], _config(engine))
    assert over_result.status == "decompression_bomb"
    assert cut_result.status == "success"
    rules = RuleSet()
    for data in (over, truncated):
        pair = Pair(rules.caption("一只可爱的小猫"), image=data, width=300, height=300)
        assert rules.judge(pair).reason == "image_corrupt"


@pytest.mark.parametrize("address", [
    "100.64.0.1", "100.100.100.200", "::ffff:127.0.0.1", "::ffff:100.100.100.200", "::ffff:10.0.0.1",
    "::127.0.0.1", "2002:7f00:1::", "2002:a9fe:a9fe::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    "192.0.2.1", "198.18.0.1", "0.0.0.0", "255.255.255.255", "fc00::1", "fe80::1", "::", "::1",
    "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b::a00:1", "64:ff9b:1::a00:1", "64:ff9b:1:ffff::1",
])
def test_every_range_that_is_not_globally_routable_is_refused(address):
    assert not is_public_address(address)
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(UnsafeDestination):
        check_destination(f"http://{host}/a.jpg", AllowList())


def test_public_addresses_and_public_6to4_pass():
    for address in ("8.8.8.8", "2606:4700::1111", "2002:0808:0808::1", "64:ff9b::808:808"):
        assert is_public_address(address)


@pytest.mark.parametrize("url", ["http://a..com/x.jpg", "http://" + "a" * 64 + ".com/y.jpg", "http://.a/x.jpg",
                                 "http://a." + "b" * 70 + "/z.jpg"])
def test_an_empty_or_over_long_dns_label_is_a_bad_url(serve, url):
    engine = serve(Catalog({"q": []}))
    with pytest.raises(BadUrl, match="label"):
        check_destination(url, AllowList())
    [result] = download_sync([url], _config(engine))  # robots.txt on: still bad_url, not robots_disallowed
    assert result.status == "bad_url"


def test_the_search_warm_up_follows_no_redirect_off_the_allow_list(serve):
    """The engine's home page redirects to another loopback port: the warm-up must not go."""
    import asyncio

    from aiohttp import web

    from crawler.baidu import SearchClient, SearchConfig, new_search_session

    hits = []

    async def run():
        async def target(request):
            hits.append(request.path)
            return web.Response(text="internal")

        async def home(request):
            raise web.HTTPFound(f"http://127.0.0.1:{target_port}/secret")

        runners = []
        ports = []
        for handler in (target, home):
            app = web.Application()
            app.router.add_get("/{tail:.*}", handler)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            runners.append(runner)
            ports.append(runner.addresses[0][1])
        target_port = ports[0]
        base = f"http://127.0.0.1:{ports[1]}"
        try:
            async with new_search_session(base) as session:
                await SearchClient(session, SearchConfig(base_url=base, requests_per_second=0)).warm_up()
        finally:
            for runner in runners:
                await runner.cleanup()

    asyncio.run(run())
    assert hits == []
