"""Helm chart repositories read without the helm CLI (checks 5 and 6).

- HTTP(S) repositories: ``<url>/index.yaml`` over urllib (the file `helm repo add` downloads);
  ``entries.<chart>[].version``.
- OCI repositories (``spec.type: oci``, ``oci://host/path``): the OCI distribution API's tag list
  ``https://host/v2/<path>/<chart>/tags/list`` (anonymous bearer token when the registry asks for
  one); when no registry answers, the caller skips with the reason.
- Version constraints as Flux reads ``spec.chart.spec.version`` (Masterminds semver: exact,
  ``*``, comparisons, ``~``, ``^``, ``x`` wildcards, ``,``/space for AND and ``||`` for OR).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import yaml

from handover.core.errors import HandoverError

TIMEOUT = 10.0
DOCKER_HUB = {"docker.io": "registry-1.docker.io", "index.docker.io": "registry-1.docker.io"}


class ChartIndexError(HandoverError):
    pass


class ChartNotFound(ChartIndexError):
    """The registry answered that the chart does not exist (HTTP 404): a definite answer (e.g. a
    misspelt chart), not an unreachable registry."""


@dataclass
class ChartIndex:
    url: str
    entries: dict[str, list[str]] = field(default_factory=dict)  # chart -> versions

    def versions(self, chart: str) -> list[str]:
        return self.entries.get(chart, [])


def index_url(repo_url: str) -> str:
    return repo_url.rstrip("/") + "/index.yaml"


def _get(url: str, timeout: float, headers: dict[str, str] | None = None) -> bytes:
    req = urllib.request.Request(url, headers={"User-Agent": "flux-handover", **(headers or {})})
    with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 (http/https only)
        return r.read()


def parse_index(url: str, text: bytes | str) -> ChartIndex:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ChartIndexError(f"{url} is not valid YAML: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("entries"), dict):
        raise ChartIndexError(f"{url} is not a Helm repository index (no `entries` mapping)")
    entries = {}
    for chart, items in data["entries"].items():
        entries[str(chart)] = [
            str(i.get("version"))
            for i in items or []
            if isinstance(i, dict) and i.get("version") is not None
        ]
    return ChartIndex(url, entries)


def fetch_index(repo_url: str, timeout: float = TIMEOUT) -> ChartIndex:
    url = index_url(repo_url)
    if urllib.parse.urlparse(url).scheme not in ("http", "https"):
        raise ChartIndexError(f"{repo_url}: not an http(s) repository URL")
    try:
        return parse_index(url, _get(url, timeout))
    except urllib.error.HTTPError as e:
        raise ChartIndexError(f"GET {url}: HTTP {e.code} {e.reason}") from e
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise ChartIndexError(f"GET {url}: {reason}") from e


def oci_tags(repo_url: str, chart: str, timeout: float = 5.0) -> list[str]:
    """Tags of oci://host/path/<chart> from the registry's tag list."""
    u = urllib.parse.urlparse(repo_url)
    if u.scheme != "oci":
        raise ChartIndexError(f"{repo_url}: not an oci:// URL")
    host = DOCKER_HUB.get(u.netloc, u.netloc)
    repo = f"{u.path.strip('/')}/{chart}".strip("/")
    url = f"https://{host}/v2/{repo}/tags/list"
    try:
        try:
            return json.loads(_get(url, timeout)).get("tags") or []
        except urllib.error.HTTPError as e:
            challenge = e.headers.get("WWW-Authenticate", "") if e.code == 401 else ""
            if not challenge.lower().startswith("bearer"):
                raise
            params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
            realm = params.pop("realm", "")
            token_url = realm + "?" + urllib.parse.urlencode(params)
            token = json.loads(_get(token_url, timeout))
            tok = token.get("token") or token.get("access_token")
            return (
                json.loads(_get(url, timeout, {"Authorization": f"Bearer {tok}"})).get("tags") or []
            )
    except urllib.error.HTTPError as e:
        if e.code == 404:
            raise ChartNotFound(
                f"GET {url}: HTTP 404 {e.reason}: the registry has no chart "
                f"{chart!r} under {repo_url}"
            ) from e
        raise ChartIndexError(f"GET {url}: HTTP {e.code} {e.reason}") from e
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise ChartIndexError(f"GET {url}: {getattr(e, 'reason', e)}") from e


class IndexCache:
    """Each repository index fetched once (errors cached too)."""

    def __init__(self, timeout: float = TIMEOUT):
        self.timeout = timeout
        self._cache: dict[str, ChartIndex | ChartIndexError] = {}

    def get(self, repo_url: str) -> ChartIndex:
        if repo_url not in self._cache:
            try:
                self._cache[repo_url] = fetch_index(repo_url, self.timeout)
            except ChartIndexError as e:
                self._cache[repo_url] = e
        v = self._cache[repo_url]
        if isinstance(v, ChartIndexError):
            raise v
        return v


# --- semver constraints (Masterminds/semver semantics, the subset Flux users write) -------------

_VER = re.compile(
    r"^v?(\d+)(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?(?:-([0-9A-Za-z.-]+))?"
    r"(?:\+[0-9A-Za-z.-]+)?$"
)


def parse_version(v: str) -> tuple[int, int, int, str] | None:
    m = _VER.match(v.strip())
    if not m or any(x and not x.isdigit() for x in m.group(2, 3)):
        return None
    return int(m.group(1)), int(m.group(2) or 0), int(m.group(3) or 0), m.group(4) or ""


def _key(v: tuple[int, int, int, str]) -> tuple:
    # a pre-release sorts before its release
    return v[:3] + ((1, "") if not v[3] else (0, v[3]))


def _one(op: str, ver: str, v: tuple[int, int, int, str]) -> bool:
    m = _VER.match(ver)
    if not m:
        raise ValueError(f"bad version in constraint: {ver!r}")
    parts = [m.group(1), m.group(2), m.group(3)]
    wild = [p is None or p in "xX*" for p in parts]
    nums = [0 if w else int(p) for p, w in zip(parts, wild, strict=True)]
    base = (nums[0], nums[1], nums[2], m.group(4) or "")
    if op in ("", "=") and any(wild):
        n = wild.index(True)
        return list(v[:n]) == nums[:n] and not v[3]
    if op == "~":
        upper = (nums[0] + 1, 0, 0) if wild[1] else (nums[0], nums[1] + 1, 0)
        return _key(v) >= _key(base) and v[:3] < upper and not (v[3] and not base[3])
    if op == "^":
        if nums[0] > 0 or wild[1]:
            upper = (nums[0] + 1, 0, 0)
        elif nums[1] > 0 or wild[2]:
            upper = (0, nums[1] + 1, 0)
        else:
            upper = (0, 0, nums[2] + 1)
        return _key(v) >= _key(base) and v[:3] < upper and not (v[3] and not base[3])
    if v[3] and not base[3]:
        return False  # pre-releases only match constraints that name one
    cmp = (_key(v) > _key(base)) - (_key(v) < _key(base))
    return {
        "": cmp == 0,
        "=": cmp == 0,
        "!=": cmp != 0,
        ">": cmp > 0,
        ">=": cmp >= 0,
        "<": cmp < 0,
        "<=": cmp <= 0,
    }[op]


def matches(constraint: str, version: str) -> bool:
    v = parse_version(version)
    if v is None:
        return False
    c = constraint.strip()
    if c in ("", "*", "x", "X"):
        return not v[3]
    for alt in c.split("||"):
        terms = re.findall(r"(>=|<=|!=|>|<|=|~|\^)?\s*(v?[0-9xX*][0-9A-Za-z.+*-]*)", alt)
        if terms and all(_one(op, ver, v) for op, ver in terms):
            return True
    return False


def resolve(constraint: str, versions: list[str]) -> str | None:
    """The highest version matching the constraint (what source-controller picks)."""
    ok = [(p, x) for x in versions if matches(constraint, x) and (p := parse_version(x))]
    return max(ok, key=lambda t: _key(t[0]))[1] if ok else None


def latest(versions: list[str], n: int = 5) -> list[str]:
    parsed = [(p, x) for x in versions if (p := parse_version(x))]
    return [x for p, x in sorted(parsed, key=lambda t: _key(t[0]), reverse=True)[:n]]


def repo_spec(repo: dict[str, Any]) -> tuple[str, str]:
    """(type, url) of a HelmRepository object ('default' or 'oci')."""
    spec = repo.get("spec") or {}
    url = str(spec.get("url", ""))
    typ = spec.get("type") or ("oci" if url.startswith("oci://") else "default")
    return typ, url
