"""pipelines.crawl_local binds the port of the earlier run on the same output, so that a rerun
after a kill gives the finished shards' images the same URLs."""

import socket

from crawler.local_engine import Catalog
from pipelines.crawl_local import PORT_FILE, start_engine_on_saved_port


def test_a_rerun_binds_the_port_of_the_earlier_run(tmp_path):
    first = start_engine_on_saved_port(Catalog({}), str(tmp_path))
    port = first.port
    first.stop()
    assert (tmp_path / PORT_FILE).read_text().strip() == str(port)
    again = start_engine_on_saved_port(Catalog({}), str(tmp_path))
    try:
        assert again.port == port
    finally:
        again.stop()


def test_a_taken_port_falls_back_to_a_new_one_and_says_so(tmp_path):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken = blocker.getsockname()[1]
    (tmp_path / PORT_FILE).write_text(f"{taken}\n")
    messages = []
    try:
        engine = start_engine_on_saved_port(Catalog({}), str(tmp_path), log=messages.append)
        try:
            assert engine.port != taken
            assert messages and f"port {taken}" in messages[0] and "crawled again" in messages[0]
            assert (tmp_path / PORT_FILE).read_text().strip() == str(engine.port)
        finally:
            engine.stop()
    finally:
        blocker.close()
