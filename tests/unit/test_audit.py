"""Reading the API server's audit log (handover/core/audit.py)."""
import json

from handover.core import audit


def event(verb, uri, user="u", code=200, stage="ResponseComplete"):
    return json.dumps({"verb": verb, "requestURI": uri, "user": {"username": user},
                       "responseStatus": {"code": code}, "stage": stage})


def test_reads_dry_runs_and_persisted_writes(tmp_path):
    log = tmp_path / "audit.log"
    log.write_text("\n".join([
        event("list", "/api/v1/namespaces/logging/pods"),
        event("patch", "/api/v1/namespaces/logging/services/loki?dryRun=All&fieldManager=x"),
        event("create", "/api/v1/namespaces?dryRun=All"),
        event("patch", "/apis/apps/v1/namespaces/logging/deployments/grafana"),
        event("delete", "/api/v1/namespaces/logging/pods/x", code=403),
        event("patch", "/api/v1/nodes/n", user="other"),
        event("get", "/api/v1/pods", stage="ResponseStarted"),
        "not json",
    ]) + "\n")
    reqs = audit.requests(log, "u")
    assert [r.verb for r in reqs] == ["list", "patch", "create", "patch", "delete"]
    assert [r.dry_run for r in reqs] == [False, True, True, False, False]
    assert [str(r) for r in reqs if r.persisted_write] == [
        "patch /apis/apps/v1/namespaces/logging/deployments/grafana -> 200"]
    assert audit.line_count(log) == 8
    assert [r.verb for r in audit.requests(log, "u", {log: 3})] == ["patch", "delete"]
