"""Differences between two object trees (values, pod templates, workload specs), as value paths.

Two comparisons:
- ``exact``: every leaf must be equal (Helm values against the release's user values).
- ``against_live``: what applying a desired tree would change on a live object. Fields the API
  server defaulted live and the desired tree does not mention are not changes; list items with a
  merge key (containers by name, env by name, ...) are matched by that key, as a strategic merge
  patch does; resource quantities are compared by value (``0.5`` == ``500m``).

A ``Difference`` prints as ``path: live <v>, Git <v>``; every value is shown as a short hash
(handover.core.redact: only booleans, null and structural fields in clear), so reports never carry a
secret in clear whatever its key is called.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from handover.core import redact


class _Missing:
    """The one marker of a field absent on one side (kept by copy, so ``is MISSING`` holds in a
    copied or ``dataclasses.asdict``-ed difference)."""

    def __repr__(self) -> str:
        return "(absent)"

    def __copy__(self) -> _Missing:
        return self

    def __deepcopy__(self, memo: dict) -> _Missing:
        return self


MISSING: Any = _Missing()

# Keys of the lists found in pod templates and workload specs, as the API server merges them
# (k8s.io/api core/v1 and apps/v1 `patchMergeKey` / `listMapKey` tags). Ports are keyed by port
# AND protocol (`+listMapKey=containerPort` `+listMapKey=protocol` on Container.Ports,
# `port`+`protocol` on ServiceSpec.Ports): a container may open 53/TCP and 53/UDP.
PORT_KEY = "port+protocol"  # MERGE_KEYS value for ports: containerPort/port + protocol
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ports": PORT_KEY,
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "volumeClaimTemplates": "metadata.name",
    "topologySpreadConstraints": "topologyKey",
}
SECRET_KEY = re.compile(
    r"pass(word|wd)?|secret|token|credential|private|apikey|api_key|"
    r"cert|(^|[._-])key$",
    re.I,
)
QUANTITY_PARENT = re.compile(r"(^|\.)(limits|requests|capacity)$|(^|\.)sizeLimit$")


@dataclass(frozen=True)
class Difference:
    """One difference, for every comparison in handover/: object trees (this module, the gate's
    dry-run, the flux diff) and snapshots (handover.snapshot.component: ``subject`` names the pod,
    claim or release, ``path`` the field, ``live``/``git`` the value before/after)."""

    path: str  # e.g. spec.template.spec.containers[name=loki].image
    live: Any  # MISSING when absent live (a snapshot: the value before)
    git: Any  # MISSING when absent in Git / the render (a snapshot: the value after)
    subject: str = ""  # the object the path is in, when the path does not say it
    meaning: str = ""  # what the difference means ("same name, new pod: recreated")

    def __str__(self) -> str:
        """``[subject: ]path <live> -> <git>[ (meaning)]``, values as Python literals: for values
        that are not secret (uids, counts, states); object trees are reported by describe()."""
        s = (
            f"{self.subject + ': ' if self.subject else ''}{self.path} {self.live!r} -> "
            f"{self.git!r}"
        )
        return f"{s} ({self.meaning})" if self.meaning else s

    def describe(self) -> str:
        return f"{self.path}: live {show(self.path, self.live)}, Git {show(self.path, self.git)}"

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "live": show(self.path, self.live),
            "git": show(self.path, self.git),
        }

    def arrow(self, limit: int = 120) -> str:
        """``path: <live> -> <git>`` with the values as they are held (strings unquoted): for a
        difference whose values were already redacted (handover.flux.diff.redacted)."""
        return f"{self.path}: {_short(self.live, limit)} -> {_short(self.git, limit)}"

    def as_json(self) -> dict[str, Any]:
        """The values as they are held, absent as null (already-redacted differences)."""
        return {
            "path": self.path,
            "live": None if self.live is MISSING else self.live,
            "git": None if self.git is MISSING else self.git,
        }


def _short(v: Any, limit: int) -> str:
    if v is MISSING:
        return "(absent)"
    s = v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def is_secret_path(path: str) -> bool:
    last = re.split(r"[.\[]", path.rstrip("]"))[-1] if path else ""
    return bool(SECRET_KEY.search(last)) or bool(re.search(r"(password|secret|token)", path, re.I))


def show(path: str, value: Any) -> str:
    """A value for a report: its path's hash (handover.core.redact.show: only booleans, null and
    structural fields such as an image or a selector in clear)."""
    if value is MISSING:
        return "(absent)"
    return redact.show(path, value)


def join(path: str, key: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_-]+", key):
        return f"{path}.{key}" if path else key
    return f'{path}["{key}"]'


def describe_all(diffs: list[Difference], limit: int = 20) -> str:
    lines = [d.describe() for d in diffs[:limit]]
    if len(diffs) > limit:
        lines.append(f"... and {len(diffs) - limit} more")
    return "; ".join(lines)


# --- exact comparison --------------------------------------------------------------------------


def exact(
    live: Any,
    git: Any,
    path: str = "",
    *,
    subtrees: bool = False,
    by_index: bool = False,
    git_keys_only: bool = False,
) -> list[Difference]:
    """Every path where the two trees differ.

    A key on one side only gives one Difference per leaf below it, or with ``subtrees`` one
    Difference holding the whole subtree (what the flux diff and the gate's dry-run report). Lists
    of equal length are compared item by item; lists of different lengths are one Difference, or
    with ``by_index`` compared item by item with the extra items absent on the other side
    (``flux diff``). With ``git_keys_only`` the keys only ``live`` has are not compared (server
    defaults), and a key absent live compares as null (the rollback's "changed since the
    backup")."""
    if isinstance(live, dict) and isinstance(git, dict):
        out: list[Difference] = []
        keys = set(git) if git_keys_only else set(live) | set(git)
        for k in sorted(keys, key=str):
            p = join(path, str(k))
            if git_keys_only:
                out.extend(exact(live.get(k), git[k], p, git_keys_only=True))
            elif k not in git:
                out.extend(
                    [Difference(p, live[k], MISSING)] if subtrees else _leaves(p, live[k], "live")
                )
            elif k not in live:
                out.extend(
                    [Difference(p, MISSING, git[k])] if subtrees else _leaves(p, git[k], "git")
                )
            else:
                out.extend(exact(live[k], git[k], p, subtrees=subtrees, by_index=by_index))
        return out
    if isinstance(live, list) and isinstance(git, list) and (len(live) == len(git) or by_index):
        out = []
        for i in range(max(len(live), len(git))):
            p = f"{path}[{i}]"
            if i >= len(live):
                out.append(Difference(p, MISSING, git[i]))
            elif i >= len(git):
                out.append(Difference(p, live[i], MISSING))
            else:
                out.extend(
                    exact(
                        live[i],
                        git[i],
                        p,
                        subtrees=subtrees,
                        by_index=by_index,
                        git_keys_only=git_keys_only,
                    )
                )
        return out
    if _scalar_equal(live, git):
        return []
    return [Difference(path or "(root)", live, git)]


def _leaves(path: str, value: Any, side: str) -> list[Difference]:
    """A subtree present on one side only, as one Difference per leaf."""
    if isinstance(value, dict) and value:
        out: list[Difference] = []
        for k in sorted(value, key=str):
            out.extend(_leaves(join(path, str(k)), value[k], side))
        return out
    return [
        Difference(path, value, MISSING) if side == "live" else Difference(path, MISSING, value)
    ]


def _scalar_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or a == b and type(a) is type(b)
    return a == b


# --- desired against live ------------------------------------------------------------------------


def _empty(v: Any) -> bool:
    return v is None or v == {} or v == []


def _quantity_equal(a: Any, b: Any) -> bool:
    try:
        return parse_quantity(a) == parse_quantity(b)
    except (ValueError, TypeError, InvalidOperation):
        return False


def _loose_equal(path: str, desired: Any, live: Any) -> bool:
    if _scalar_equal(desired, live):
        return True
    parent = path.rsplit(".", 1)[0] if "." in path else ""
    if (
        QUANTITY_PARENT.search(parent)
        or path.endswith("sizeLimit")
        or path.endswith("requests.storage")
    ):
        if _quantity_equal(desired, live):
            return True
    # int-or-string fields (targetPort, maxSurge ...): 8080 == "8080"
    if (
        isinstance(desired, (int, float, Decimal)) != isinstance(live, (int, float, Decimal))
        and not isinstance(desired, bool)
        and not isinstance(live, bool)
        and isinstance(desired, (str, int, float))
        and isinstance(live, (str, int, float))
    ):
        return str(desired) == str(live)
    return False


def _key_of(item: Any, key: str) -> Any:
    if key == PORT_KEY:
        if not isinstance(item, dict):
            return None
        num = item.get("containerPort", item.get("port"))
        if num is None:
            return None
        field = "containerPort" if "containerPort" in item else "port"
        # protocol defaults to TCP (API default), so an unset protocol matches a live "TCP"
        return f"{field}={num},protocol={item.get('protocol') or 'TCP'}"
    for part in key.split("."):
        if not isinstance(item, dict):
            return None
        item = item.get(part)
    return item


def _label(key: str, value: str) -> str:
    """The bracket label of a keyed list item: name=loki, containerPort=53,protocol=UDP."""
    return value if key == PORT_KEY else f"{key.split('.')[-1]}={value}"


def _list_key(path: str) -> str | None:
    last = re.split(r"[.\]]", path)[-1] if path else ""
    return MERGE_KEYS.get(last)


def against_live(
    desired: Any, live: Any, path: str = "", strict_lists: bool = False
) -> list[Difference]:
    """Fields of ``desired`` whose live value differs (or is absent live).

    Live-only fields are ignored (defaults, status, other managers), except that in keyed lists a
    live item missing from ``desired`` is reported when ``strict_lists`` (a list replaced whole)."""
    if _empty(desired):
        return []
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return [Difference(path, MISSING if live is None else live, desired)]
        out: list[Difference] = []
        for k in sorted(desired, key=str):
            p = join(path, str(k))
            if _empty(desired[k]):
                continue
            if k not in live or live[k] is None:
                out.append(Difference(p, MISSING, desired[k]))
            else:
                out.extend(against_live(desired[k], live[k], p, strict_lists))
        return out
    if isinstance(desired, list):
        if not isinstance(live, list):
            return [Difference(path, MISSING if live is None else live, desired)]
        key = _list_key(path)
        if (
            key
            and all(isinstance(i, dict) and _key_of(i, key) is not None for i in desired)
            and all(isinstance(i, dict) for i in live)
        ):
            out = []
            live_by = {str(_key_of(i, key)): i for i in live}
            want = [str(_key_of(i, key)) for i in desired]
            for item, k in zip(desired, want, strict=True):
                p = f"{path}[{_label(key, k)}]"
                if k not in live_by:
                    out.append(Difference(p, MISSING, item))
                else:
                    out.extend(against_live(item, live_by[k], p, strict_lists))
            if strict_lists:
                for k, item in live_by.items():
                    if k not in want:
                        out.append(Difference(f"{path}[{_label(key, k)}]", item, MISSING))
            return out
        if len(desired) != len(live):
            return [Difference(path, live, desired)]
        out = []
        for i, (d, lv) in enumerate(zip(desired, live, strict=True)):
            out.extend(against_live(d, lv, f"{path}[{i}]", strict_lists))
        return out
    if _loose_equal(path, desired, live):
        return []
    return [Difference(path, live, desired)]


def removed_fields(previous: Any, desired: Any, live: Any, path: str = "") -> list[Difference]:
    """Fields set by the previous apply (old manifest / last-applied) that ``desired`` no longer
    has and that are still live: a three-way merge deletes them."""
    if _empty(previous) or not isinstance(live, (dict, list)):
        return []
    if isinstance(previous, dict) and isinstance(live, dict):
        desired = desired if isinstance(desired, dict) else {}
        out: list[Difference] = []
        for k in sorted(previous, key=str):
            p = join(path, str(k))
            if k not in live or _empty(previous[k]):
                continue
            if (k not in desired or desired[k] is None) and not (
                isinstance(previous[k], dict) and isinstance(live[k], dict)
            ):
                out.append(Difference(p, live[k], MISSING))
            elif k not in desired or desired[k] is None:
                out.extend(removed_fields(previous[k], {}, live[k], p))
            else:
                out.extend(removed_fields(previous[k], desired[k], live[k], p))
        return out
    if isinstance(previous, list) and isinstance(live, list):
        key = _list_key(path)
        if not key or not isinstance(desired, list):
            return []
        des = {str(_key_of(i, key)): i for i in desired if isinstance(i, dict)}
        liv = {str(_key_of(i, key)): i for i in live if isinstance(i, dict)}
        out = []
        for item in previous:
            if not isinstance(item, dict):
                continue
            k = str(_key_of(item, key))
            p = f"{path}[{_label(key, k)}]"
            if k in liv and k not in des:
                out.append(Difference(p, liv[k], MISSING))
            elif k in liv:
                out.extend(removed_fields(item, des[k], liv[k], p))
        return out
    return []


def get_path(obj: Any, *keys: str, default: Any = None) -> Any:
    for k in keys:
        if not isinstance(obj, dict) or k not in obj:
            return default
        obj = obj[k]
    return obj
