"""The last line of the redaction rule (handover.core.redact) for what pytest itself writes: the
failure text (terminal and JUnit XML), the captured output sections, skip reasons and the JUnit
properties (``record_property``, the rollback actions) pass through ``redact.scrub``, so a value
that reached an exception message (a kubectl stderr, an API error) is shown by its hash.

It wraps the runbook plugin's journal/rollback ``pytest_runtest_makereport`` (a tryfirst wrapper,
outside it, so it scrubs what the rollback adds); only the runbook plugin's report recorder is
further out, so the migration report gets the scrubbed text."""

from __future__ import annotations

from collections.abc import Generator
from types import SimpleNamespace

import pytest

from handover.core import redact


class ScrubbedRepr:
    """A failure's text after ``redact.scrub``, with the parts of a pytest longrepr that the
    terminal, JUnit XML and the other plugins read (``toterminal``, ``reprcrash``)."""

    def __init__(self, text: str, crash) -> None:
        self.text = text
        self.reprcrash = (
            None
            if crash is None
            else SimpleNamespace(
                path=getattr(crash, "path", ""),
                lineno=getattr(crash, "lineno", 0),
                message=redact.scrub(str(getattr(crash, "message", ""))),
            )
        )

    def toterminal(self, tw) -> None:
        for line in self.text.splitlines():
            tw.line(line)

    def __str__(self) -> str:
        return self.text


def _scrub_props(props: list) -> None:
    for i, (name, value) in enumerate(props):
        props[i] = (redact.scrub(str(name)), redact.scrub(str(value)))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    lr = report.longrepr
    if isinstance(lr, tuple) and len(lr) == 3:  # a skip: (path, line, reason)
        report.longrepr = (lr[0], lr[1], redact.scrub(str(lr[2])))
    elif lr is not None:
        text = str(lr)
        clean = redact.scrub(text)
        if clean != text:  # the scrubbed text instead of the traceback object
            report.longrepr = ScrubbedRepr(clean, getattr(lr, "reprcrash", None))
    report.sections = [(title, redact.scrub(body)) for title, body in report.sections]
    _scrub_props(item.user_properties)
    _scrub_props(report.user_properties)
    return report
