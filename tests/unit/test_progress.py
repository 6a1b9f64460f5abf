"""handover.core.progress (the wait hook) and plugins.progress (its terminal sink): one updating line
on a terminal, one line per state change elsewhere, a failed wait says so, a broken sink never
breaks a wait, and the waits phase 3 / rollback use report through it."""
from __future__ import annotations

import pytest

from handover.core import progress
from handover.flux import takeover
from plugins.progress import TerminalProgress


class FakeTR:
    def __init__(self):
        self.out: list[str] = []

    def write(self, text: str) -> None:
        self.out.append(text)

    def flush(self) -> None:
        pass


class FakePM:
    def __init__(self, tr):
        self.tr = tr

    def get_plugin(self, name):
        return self.tr if name == "terminalreporter" else None


class FakeConfig:
    def __init__(self):
        self.tr = FakeTR()
        self.pluginmanager = FakePM(self.tr)


@pytest.fixture()
def seen():
    got: list[progress.Progress] = []
    prev = progress.set_sink(got.append)
    yield got
    progress.set_sink(prev)


def test_wait_reports_start_updates_and_end(seen):
    with progress.wait("HelmRelease logging/loki Ready", 300) as w:
        w.update("Reconciliation in progress\nsecond line")
    assert [p.state for p in seen] == ["waiting", "waiting", "done"]
    assert seen[1].message == "Reconciliation in progress" and seen[1].timeout == 300
    assert seen[-1].line() == "done HelmRelease logging/loki Ready [0 s / 300 s]"


def test_an_exception_ends_the_wait_as_failed(seen):
    with pytest.raises(RuntimeError):
        with progress.wait("pods Running", 5) as w:
            w.update("0/1 ready")
            raise RuntimeError("boom")
    assert seen[-1].state == "failed" and seen[-1].message == "0/1 ready"


def test_a_broken_sink_never_breaks_a_wait():
    def broken(p):
        raise ValueError("display gone")
    prev = progress.set_sink(broken)
    try:
        with progress.wait("x") as w:
            w.update("y")
    finally:
        progress.set_sink(prev)


def test_non_interactive_output_is_one_line_per_state_change():
    cfg = FakeConfig()
    sink = TerminalProgress(cfg, tty=False)
    prev = progress.set_sink(sink)
    try:
        with progress.wait("Kustomization flux-system/handover-loki Ready", 60) as w:
            for _ in range(50):
                w.update("Reconciliation in progress")
            w.update("Applied revision main@sha1:abc; password=hunter2")
    finally:
        progress.set_sink(prev)
    lines = "".join(cfg.tr.out).splitlines()
    assert lines[0] == ""  # the wait starts on its own line
    lines = lines[1:]
    assert len(lines) == 4, lines  # start, message, new message, done
    assert lines[0].startswith("waiting Kustomization flux-system/handover-loki Ready [0 s / 60 s]")
    assert lines[1].endswith(": Reconciliation in progress")
    assert "hunter2" not in "".join(cfg.tr.out) and "password=<sha256:" in lines[2]
    assert lines[-1].startswith("done ")


def test_interactive_output_redraws_one_line(monkeypatch):
    cfg = FakeConfig()
    sink = TerminalProgress(cfg, tty=True)
    clock = iter(float(i) for i in range(1000))
    monkeypatch.setattr("plugins.progress.time.monotonic", lambda: next(clock))
    for i in range(5):
        sink(progress.Progress("pods Running", float(i), 30, "0/1 ready", "waiting"))
    sink(progress.Progress("pods Running", 5.0, 30, "1/1 ready", "done"))
    out = "".join(cfg.tr.out)
    assert out.startswith("\nwaiting pods Running [0 s / 30 s]: 0/1 ready")
    assert out.count("\n") == 2 and out.count("\r") == 5  # one line, redrawn, ended once
    assert out.rstrip().endswith("done pods Running [5 s / 30 s]: 1/1 ready")


def test_wait_gone_reports_through_the_hook(seen):
    class Kube:
        n = 0

        def get(self, *a):
            self.n += 1
            return {"metadata": {}} if self.n < 3 else None
    assert takeover.wait_gone(Kube(), "v1", "ConfigMap", "x", "ns", 5)
    assert seen[0].what == "ConfigMap ns/x gone" and seen[-1].state == "done"
    assert any(p.message == "still present (finalizers)" for p in seen)


def test_building_the_kube_binaries_reports_the_build_log(seen, tmp_path, monkeypatch):
    """ensure_kube_binaries: the wait shows the build log's last line while the build runs."""
    from handover.rehearsal import binaries
    script = tmp_path / "build.sh"
    script.write_text("#!/usr/bin/env bash\nset -e\necho 'go build kube-apiserver'\nsleep 2.5\n"
                      "echo 'go build kube-controller-manager'\nmkdir -p \"$1\"\n"
                      "for b in kube-apiserver kube-controller-manager; do\n"
                      "  printf '#!/bin/sh\\n' > \"$1/$b\"; chmod +x \"$1/$b\"; done\n")
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    monkeypatch.setattr(binaries, "BUILD_SCRIPT", script)
    monkeypatch.setattr(binaries.tools, "cache_dir", lambda: tmp_path / "cache")
    out = binaries.ensure_kube_binaries()
    assert out == tmp_path / "cache" / "kube" / binaries.KUBE_VERSION
    assert seen[0].what.startswith("building kube-apiserver/kube-controller-manager")
    assert any(p.message == "go build kube-apiserver" for p in seen), seen
    assert seen[-1].state == "done"
