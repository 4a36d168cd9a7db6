"""Fixtures of the crawler tests: a local engine on 127.0.0.1."""

import pytest

from crawler.local_engine import Catalog, LocalEngine


@pytest.fixture
def serve():
    """serve(catalog) -> a started LocalEngine, stopped after the test."""
    engines = []

    def start(catalog: Catalog) -> LocalEngine:
        engine = LocalEngine(catalog).start()
        engines.append(engine)
        return engine

    yield start
    for engine in engines:
        engine.stop()
