"""Helm release storage decoding, without the helm CLI (helm pkg/storage/driver/util.go)."""
from __future__ import annotations

import base64
import json

from handover.sources import helm_storage


def release(**over):
    rel = {"name": "loki", "namespace": "logging", "version": 3,
           "info": {"status": "deployed", "last_deployed": "2026-01-01T00:00:00Z"},
           "chart": {"metadata": {"name": "loki", "version": "6.21.0", "appVersion": "3.3.0"},
                     "values": {"replicas": 1}},
           "config": {"persistence": {"enabled": True}}, "manifest": "---\nkind: Service\n"}
    rel.update(over)
    return rel


def secret(rel, ns="logging"):
    return {"metadata": {"name": helm_storage.secret_name(rel["name"], rel["version"]),
                         "namespace": ns, "labels": {"owner": "helm", "status": "deployed"}},
            "type": helm_storage.SECRET_TYPE,
            "data": {"release": helm_storage.encode_release(rel)}}


def test_decode_is_base64_twice_then_gunzip():
    rel = release()
    assert helm_storage.decode_release(helm_storage.encode_release(rel)) == rel


def test_decode_without_gzip_magic_skips_gunzip():
    rel = release()
    inner = base64.b64encode(json.dumps(rel).encode())
    assert helm_storage.decode_release(base64.b64encode(inner).decode()) == rel


def test_record_from_secret_reads_the_fields_the_migration_uses():
    rec = helm_storage.record_from_secret(secret(release(), ns="flux-system"))
    assert (rec.name, rec.namespace, rec.storage_namespace, rec.revision) == \
        ("loki", "logging", "flux-system", 3)
    assert (rec.chart_name, rec.chart_version, rec.app_version, rec.status) == \
        ("loki", "6.21.0", "3.3.0", "deployed")
    assert rec.config == {"persistence": {"enabled": True}}
    assert rec.chart_values == {"replicas": 1}
    assert rec.secret_name == "sh.helm.release.v1.loki.v3"


def test_summary_carries_no_values_or_manifest():
    rec = helm_storage.record_from_secret(secret(release(config={"adminPassword": "s3cr3t"})))
    text = json.dumps(rec.summary())
    assert "s3cr3t" not in text and "manifest" not in text and rec.summary()["revision"] == 3
