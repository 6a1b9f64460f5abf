from handover.tree_diff import MISSING, Difference, against_live, exact, removed_fields, show


def test_exact_names_every_differing_leaf_path():
    live = {"loki": {"auth_enabled": False, "retention": "168h"}, "a.b": 1, "gone": 1}
    git = {"loki": {"auth_enabled": True, "retention": "168h"}, "a.b": 2, "new": [1]}
    d = {x.path: x for x in exact(live, git)}
    assert set(d) == {"loki.auth_enabled", '["a.b"]', "gone", "new"}
    assert d["loki.auth_enabled"].describe() == "loki.auth_enabled: live false, Git true"
    assert d["gone"].git is MISSING and d["new"].live is MISSING


def test_exact_equal_trees_and_bool_is_not_int():
    assert exact({"a": [1, {"b": 2}]}, {"a": [1, {"b": 2}]}) == []
    assert exact({"a": 1}, {"a": True}) != []


def test_against_live_ignores_defaults_and_matches_keyed_lists():
    desired = {"spec": {"containers": [{"name": "c", "image": "x:1",
                                        "resources": {"requests": {"cpu": "0.5"}}}]}}
    live = {"spec": {"dnsPolicy": "ClusterFirst", "containers": [
        {"name": "side", "image": "s"},
        {"name": "c", "image": "x:1", "imagePullPolicy": "IfNotPresent",
         "resources": {"requests": {"cpu": "500m"}}}]}}
    assert against_live(desired, live) == []
    live["spec"]["containers"][1]["image"] = "x:2"
    assert [d.path for d in against_live(desired, live)] == ["spec.containers[name=c].image"]


def test_against_live_missing_field_and_int_or_string():
    assert against_live({"port": 8080}, {"port": "8080"}) == []
    d = against_live({"a": {"b": 1}}, {"a": {}})
    assert d == [Difference("a.b", MISSING, 1)]


def test_removed_fields_only_those_the_previous_apply_set():
    prev = {"metadata": {"annotations": {"x": "1"}}}
    live = {"metadata": {"annotations": {"x": "1", "kubectl.kubernetes.io/restartedAt": "t"}}}
    out = removed_fields(prev, {"metadata": {}}, live)
    assert [d.path for d in out] == ["metadata.annotations.x"]


def test_secret_paths_are_redacted():
    assert "hunter2" not in show("adminPassword", "hunter2")
    assert show("adminPassword", "a") != show("adminPassword", "b")
    assert show("replicas", 2) == "2"
