import http.server
import threading

import pytest

from handover.sources import chart_index
from handover.sources.chart_index import ChartIndexError, IndexCache


@pytest.mark.parametrize("constraint,version,ok", [
    ("6.21.0", "6.21.0", True), ("6.21.0", "6.21.1", False), ("*", "1.0.0", True),
    ("*", "1.0.0-rc.1", False), (">=1.2 <2", "1.9.9", True), (">=1.2 <2", "2.0.0", False),
    (">=1.2, <2", "1.1.0", False), ("~1.2.3", "1.2.9", True), ("~1.2.3", "1.3.0", False),
    ("^1.2.3", "1.9.0", True), ("^1.2.3", "2.0.0", False), ("^0.2.3", "0.3.0", False),
    ("1.2.x", "1.2.7", True), ("1.2.x", "1.3.0", False), ("<1 || >=3", "3.1.0", True),
    ("<1 || >=3", "2.0.0", False), ("!=1.0.0", "1.0.0", False), ("v1.0.0", "1.0.0", True),
])
def test_matches(constraint, version, ok):
    assert chart_index.matches(constraint, version) is ok


def test_resolve_picks_highest():
    assert chart_index.resolve("^6", ["6.1.0", "6.21.0", "7.0.0", "6.3.0"]) == "6.21.0"
    assert chart_index.resolve("9.9.9", ["6.1.0"]) is None
    assert chart_index.latest(["1.0.0", "1.10.0", "1.2.0"], 2) == ["1.10.0", "1.2.0"]


def test_parse_index_rejects_non_index():
    with pytest.raises(ChartIndexError, match="not a Helm repository index"):
        chart_index.parse_index("u", "apiVersion: v1\n")
    idx = chart_index.parse_index("u", "entries:\n  loki:\n  - version: 6.21.0\n  - version: 6.20.0\n")
    assert idx.versions("loki") == ["6.21.0", "6.20.0"] and idx.versions("x") == []


@pytest.fixture
def http_repo(tmp_path):
    (tmp_path / "index.yaml").write_text("apiVersion: v1\nentries:\n  grafana:\n"
                                         "  - version: 8.5.0\n")
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path),
                                                                    **k)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.RequestHandlerClass.log_message = lambda *a: None
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_fetch_index_over_http(http_repo):
    assert chart_index.fetch_index(http_repo + "/").versions("grafana") == ["8.5.0"]
    with pytest.raises(ChartIndexError, match="HTTP 404"):
        chart_index.fetch_index(http_repo + "/nope")


def test_unreachable_repository_is_cached_error():
    cache = IndexCache(timeout=2)
    with pytest.raises(ChartIndexError, match="index.yaml"):
        cache.get("http://127.0.0.1:9/")
    with pytest.raises(ChartIndexError):
        cache.get("http://127.0.0.1:9/")


def test_oci_tags_unreachable_says_why():
    with pytest.raises(ChartIndexError, match="tags/list"):
        chart_index.oci_tags("oci://127.0.0.1:9/charts", "gateway-helm", timeout=2)
