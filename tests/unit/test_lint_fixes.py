"""Behaviour fixed or pinned while making `mypy handover` pass (issue 9). The dry-run and the
check-lane tests fail on the code before (a list read as the live object; a TypeError)."""
from __future__ import annotations

from types import SimpleNamespace

from handover.gate import dryrun
from handover.report import html as report_html
from handover.sources import chart_index


class _ListingKube:
    """A Kube whose get() of a name of None would list the kind (as the dynamic client does)."""

    def __init__(self) -> None:
        self.gets: list[tuple] = []
        res = SimpleNamespace(namespaced=True)
        self.dynamic = SimpleNamespace(resources=SimpleNamespace(get=lambda **kw: res))

    def list(self, api_version: str, kind: str, namespace: str | None = None) -> list[dict]:
        return [{"metadata": {"name": "default"}}]

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict:
        self.gets.append((api_version, kind, name, namespace))
        return {"kind": f"{kind}List", "items": []}


def test_dry_run_rejects_an_object_without_a_name_and_reads_nothing():
    kube = _ListingKube()
    r = dryrun.DryRunner(kube).one(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}, {}, {})
    assert r.result == "rejected" and "metadata.name" in r.detail
    assert kube.gets == []  # before: get(name=None), i.e. a list of every ConfigMap


def test_step_times_derive_one_end_from_the_other():
    assert report_html._step_times({"start": 10.0, "seconds": 5}) == (10.0, 15.0)
    assert report_html._step_times({"end": 10.0, "seconds": 4}) == (6.0, 10.0)
    assert report_html._step_times({"seconds": 4}) is None


def test_a_check_that_never_started_is_not_drawn():
    axis = report_html.Axis([(0.0, 10.0)], 600)
    drawn = report_html._check_lane([{"name": "never", "outcome": "skipped"},
                                     {"name": "ran", "outcome": "passed", "start": 1.0,
                                      "end": 2.0}], axis, 0)
    # before: axis.x(None) raised TypeError and the whole report failed
    assert len(drawn) == 1 and "ran" in drawn[0]


def test_versions_that_do_not_parse_are_left_out_of_resolve_and_latest():
    assert chart_index.resolve(">=1.0.0", ["1.2.0", "not-a-version", "1.10.0"]) == "1.10.0"
    assert chart_index.latest(["1.2.0", "junk", "2.0.0"], n=5) == ["2.0.0", "1.2.0"]
