"""The one redaction rule: a value is shown by its path and a short hash, never by itself.

- ``digest(value)``: ``sha256:`` + the first 12 hex digits of the sha256 of the value (a string's
  own UTF-8 bytes, so ``printf %s VALUE | sha256sum`` finds it again; anything else: its canonical
  JSON). ``hashed(value)`` is the same wrapped in ``<...>``, the form every message uses.
- ``show(path, value)``: how a diff prints one value. Everything is hashed except booleans and
  null (one bit, never a secret) and the values of a few structural fields that cannot hold a
  secret (an image, a replica count, a label selector...; ``CLEAR_KEYS``).
- ``shape(obj)``: an object as ``path=<sha256:...>`` lines (what the journal records of a patch).
- ``scrub(text)``: free text (kubectl / helm stderr, API errors, assertion messages) with every
  value the process has read from a Secret or a Helm release (``register``), every embedded JSON
  object, credentials in URLs, ``password=...``-style pairs, ``Invalid value: ...`` and long
  base64 runs replaced by their hash. The sinks (journal, reports, JUnit, terminal) all go
  through it (handover.core.journal, handover.report.migration, plugins/redaction.py).
- ``private_dir`` / ``write_private``: folders 0700 (every level created under a root), files 0600.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

HASH_LEN = 12
MIN_KNOWN_LEN = 6  # shorter registered values are not searched for in free text (too common)

# Leaf keys whose values are structure, never a secret: shown in clear in diffs.
CLEAR_KEYS = frozenset(
    {
        "image",
        "imagePullPolicy",
        "replicas",
        "replicaCount",
        "selector",
        "matchLabels",
        "serviceName",
        "clusterIP",
        "clusterIPs",
        "storageClassName",
        "accessModes",
        "volumeName",
        "podManagementPolicy",
        "kind",
        "apiVersion",
        "containerPort",
        "protocol",
        "suspend",
        "prune",
        "interval",
        "timeout",
        "version",
        "cpu",
        "memory",
        "storage",
        "size",
        "port",
        "targetPort",
        "nodePort",
        "persistentVolumeReclaimPolicy",
        "reclaimPolicy",
        "deletionPolicy",
        "restartPolicy",
        "volumeMode",
        "minReadySeconds",
        "revisionHistoryLimit",
        "progressDeadlineSeconds",
    }
)
SECRETISH_KEY = re.compile(
    r"pass(word|wd)?|secret|token|credential|private|apikey|api_key|"
    r"cert|dsn|url|uri|conn",
    re.I,
)

_known: dict[str, str] = {}  # registered value (or an encoding of it) -> its hash


def digest(value: Any) -> str:
    data = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(data.encode()).hexdigest()[:HASH_LEN]


def hashed(value: Any) -> str:
    return f"<{digest(value)}>"


def _last_key(path: str) -> str:
    parts = [p for p in re.split(r"[.\[\]\"=]", path or "") if p]
    # the last field name (containers[name=x] ends in the key's value x: not a CLEAR_KEY)
    return parts[-1] if parts else ""


def clear_ok(path: str, value: Any) -> bool:
    """Whether a value may be printed in clear: booleans, null, structural fields."""
    if value is None or isinstance(value, bool):
        return True
    if SECRETISH_KEY.search(path or ""):
        return False
    key = _last_key(path)
    if key in CLEAR_KEYS:
        return True
    # a value inside a structural field (selector.matchLabels.app, resources.limits.cpu)
    return bool(re.search(r"(^|\.)(labels|selector|matchLabels|resources)(\.|\[|$)", path or ""))


def show(path: str, value: Any, limit: int = 120) -> str:
    """One value of a diff at ``path``: JSON in clear when ``clear_ok``, else its hash (and the
    value is registered so that free text never repeats it)."""
    if clear_ok(path, value):
        text = json.dumps(value, sort_keys=True, default=str)
        return text if len(text) <= limit else text[: limit - 3] + "..."
    register_values(value, path)
    return hashed(value)


def _leaves(obj: Any, path: str = "") -> Iterable[tuple[str, Any]]:
    if isinstance(obj, dict) and obj:
        for k in sorted(obj, key=str):
            key = str(k)
            sub = (
                (f"{path}.{key}" if path else key)
                if re.fullmatch(r"[A-Za-z0-9_-]+", key)
                else f'{path}["{key}"]'
            )
            yield from _leaves(obj[k], sub)
    elif isinstance(obj, list) and obj:
        for i, v in enumerate(obj):
            yield from _leaves(v, f"{path}[{i}]")
    else:
        yield path or "(root)", obj


def shape(obj: Any) -> list[str]:
    """``path=<sha256:...>`` per leaf (booleans and null in clear): what was sent, not the value."""
    out = []
    for p, v in _leaves(obj):
        out.append(f"{p}={json.dumps(v) if v is None or isinstance(v, bool) else hashed(v)}")
    return out


# --- known values ---------------------------------------------------------------------------------


def register(value: Any) -> None:
    """Remember every string leaf of ``value`` (and its base64 and JSON-escaped forms) so that
    ``scrub`` hashes it wherever it turns up in free text."""
    for _, v in _leaves(value):
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            v = str(v)
        if not isinstance(v, str) or len(v.strip()) < MIN_KNOWN_LEN:
            continue
        h = hashed(v)
        forms = {
            v,
            base64.b64encode(v.encode()).decode(),
            json.dumps(v)[1:-1],
            json.dumps(json.dumps(v))[3:-3],
        }
        for f in forms:
            if len(f) >= MIN_KNOWN_LEN:
                _known.setdefault(f, h)
        for line in v.splitlines():  # a values.yaml: each line too
            if len(line.strip()) >= MIN_KNOWN_LEN and line.strip() != v:
                _known.setdefault(line.strip(), hashed(line.strip()))


_PLAIN_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?|\d+(\.\d+)*")


def register_values(values: Any, under: str = "") -> None:
    """The strings of Helm values that may be secret: under a secret-looking key, or not a plain
    lower-case name / number (``logging``, ``local-path`` and ``3`` stay readable in messages;
    ``postgres://u:p@db`` or ``Xk9#...`` do not). Secrets are registered whole (register_secret)."""
    for p, v in _leaves(values):
        if not isinstance(v, str):
            continue
        if SECRETISH_KEY.search(f"{under}.{p}") or (len(v) >= 8 and not _PLAIN_NAME.fullmatch(v)):
            register(v)


def register_secret(obj: dict[str, Any] | None) -> None:
    """Every value of a Secret (data decoded, and stringData)."""
    if not obj:
        return
    texts = list((obj.get("stringData") or {}).values())
    for v in (obj.get("data") or {}).values():
        try:
            texts.append(base64.b64decode(v).decode())
        except (ValueError, UnicodeDecodeError, TypeError):
            texts.append(str(v))
    for text in texts:
        register(text)
        if isinstance(text, str) and "\n" in text.strip() or ":" in str(text):
            try:  # a values file in a Secret: its values one by one
                register(yaml.safe_load(text))
            except yaml.YAMLError:
                pass


def forget_all() -> None:
    """Tests only: start from no registered value."""
    _known.clear()


# --- free text ------------------------------------------------------------------------------------

_URL_CRED = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)([^/\s:@\"']+):([^/\s@\"']+)@")
_PAIR = re.compile(
    r"(?i)\b(password|passwd|pwd|token|secret|apikey|api_key|"
    r"credentials?)(\"?\s*[:=]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;}\]]+)"
    r"|\b(bearer)(\s+)(\S+)"
)
_INVALID = re.compile(r"(Invalid value: )(\"(?:[^\"\\]|\\.)*\"|\S+)")
_B64 = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{24,}={0,2}(?![A-Za-z0-9+/=])")
_ALREADY = re.compile(rf"<sha256:[0-9a-f]{{{HASH_LEN}}}>")


def _json_blobs(text: str) -> str:
    dec = json.JSONDecoder()
    out, i = [], 0
    while True:
        j = min((k for k in (text.find("{", i), text.find("[{", i)) if k >= 0), default=-1)
        if j < 0:
            out.append(text[i:])
            return "".join(out)
        try:
            obj, end = dec.raw_decode(text, j)
        except ValueError:
            out.append(text[i : j + 1])
            i = j + 1
            continue
        out.append(text[i:j])
        hidden = (
            [(p, v) for p, v in _leaves(obj) if not clear_ok(p, v)]
            if isinstance(obj, (dict, list)) and obj
            else []
        )
        if hidden:
            # an object with any value that may be secret (a patch echo, Secret data); one of
            # structure only (a selector printed by a diff) stays readable. Only the values that
            # may be secret are remembered (register_values: never a plain name).
            for p, v in hidden:
                register_values(v, p)
            out.append(f"<json {digest(obj)}: {len(list(_leaves(obj)))} value(s)>")
        else:
            out.append(text[j:end])
        i = end


def _b64(m: re.Match) -> str:
    s = m.group(0)
    mixed = re.search(r"\d", s) and re.search(r"[a-z]", s) and re.search(r"[A-Z]", s)
    if not (mixed or s.endswith("=")) or "/" in s and "+" not in s and s.count("/") > 1:
        return s  # a word, a hex digest / commit id, or a path
    return hashed(s)


def _invalid(m: re.Match) -> str:
    """The API server's ``Invalid value: X``: a quoted value (Secret and ConfigMap data are
    strings) is hashed; a bare number (a port, a replica count) or boolean stays readable."""
    val = m.group(2)
    if _ALREADY.fullmatch(val) or re.fullmatch(r"-?\d+(\.\d+)?:?|true:?|false:?|null:?", val):
        return m.group(0)
    return m.group(1) + hashed(val.strip('"'))


def _pair(m: re.Match) -> str:
    key, sep, val = (
        (m.group(1), m.group(2), m.group(3)) if m.group(1) else (m.group(4), m.group(5), m.group(6))
    )
    if _ALREADY.fullmatch(val) or val.startswith("<json sha256:"):
        return m.group(0)
    return f"{key}{sep}{hashed(val.strip(chr(34) + chr(39)))}"


def scrub(text: str) -> str:
    """``text`` with everything that may be a secret value replaced by its hash (see module)."""
    if not text:
        return text or ""
    for value in sorted(_known, key=len, reverse=True):
        if value in text:
            text = text.replace(value, _known[value])
    text = _json_blobs(text)
    text = _URL_CRED.sub(lambda m: f"{m.group(1)}{hashed(m.group(2) + ':' + m.group(3))}@", text)
    text = _PAIR.sub(_pair, text)
    text = _INVALID.sub(_invalid, text)
    text = _B64.sub(_b64, text)
    return text


def scrub_all(obj: Any) -> Any:
    """``scrub`` on every string of a JSON-like structure (keys kept)."""
    if isinstance(obj, str):
        return scrub(obj)
    if isinstance(obj, dict):
        return {k: scrub_all(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [scrub_all(v) for v in obj]
    return obj


# --- files ----------------------------------------------------------------------------------------


def private_dir(path: str | Path, root: str | Path | None = None) -> Path:
    """Create ``path`` and every missing folder above it with mode 0700; when ``root`` is one of
    its ancestors, every existing folder from ``root`` down to ``path`` is set to 0700 too."""
    path = Path(path)
    missing = []
    p = path
    while not p.exists() and p.parent != p:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        d.mkdir(mode=0o700, exist_ok=True)
        os.chmod(d, 0o700)
    if root is not None:
        root = Path(root)
        chain = [path] + [q for q in path.parents]
        if root in chain:
            for d in chain[: chain.index(root) + 1]:
                os.chmod(d, 0o700)
    return path


def write_private(path: str | Path, text: str, root: str | Path | None = None) -> Path:
    """Write a file mode 0600 in a 0700 folder (see ``private_dir``)."""
    path = Path(path)
    private_dir(path.parent, root)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(path, 0o600)
    return path
