"""What an identity did to a cluster, read from the API server's audit log (Metadata level, one
JSON event per line). Used to prove from the server's side that a run was read-only: every
request was a read, or a write that carried ``dryRun`` (which the server validates, admits and
then discards).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

READ_VERBS = {"get", "list", "watch"}


@dataclass(frozen=True)
class Request:
    verb: str
    uri: str
    user: str
    code: int | None
    stage: str

    @property
    def dry_run(self) -> bool:
        return "dryRun" in parse_qs(urlparse(self.uri).query)

    @property
    def is_read(self) -> bool:
        return self.verb in READ_VERBS

    @property
    def persisted_write(self) -> bool:
        """A write the server may have stored: not a read, not a dry run, not refused."""
        return not self.is_read and not self.dry_run and (self.code is None or self.code < 400)

    def __str__(self) -> str:
        return f"{self.verb} {self.uri} -> {self.code}"


def requests(
    log: Path | list[Path], user: str, since_line: dict[Path, int] | None = None
) -> list[Request]:
    """The completed requests of ``user`` (ResponseComplete stage), optionally only the lines
    after ``since_line[path]`` of each file."""
    paths = log if isinstance(log, list) else [log]
    out = []
    for p in paths:
        if not p.exists():
            continue
        with open(p) as f:
            for i, line in enumerate(f):
                if since_line and i < since_line.get(p, 0):
                    continue
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if (ev.get("user") or {}).get("username") != user or ev.get(
                    "stage"
                ) != "ResponseComplete":
                    continue
                out.append(
                    Request(
                        ev.get("verb", ""),
                        ev.get("requestURI", ""),
                        user,
                        (ev.get("responseStatus") or {}).get("code"),
                        ev.get("stage", ""),
                    )
                )
    return out


def line_count(log: Path) -> int:
    if not log.exists():
        return 0
    with open(log) as f:
        return sum(1 for _ in f)
