"""Errors that carry a message fit for a person mid-migration."""


class HandoverError(Exception):
    """Base class: the message says what is wrong and what to do."""


class UnsafeActionRefused(HandoverError):
    """A mutation was refused by a safety interlock (no --perform, wrong context, forbidden step)."""


class ToolNotFound(HandoverError):
    """A required binary (kubectl, helm, etcd, kube-apiserver ...) is missing."""
