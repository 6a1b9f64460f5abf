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


def _dns_container(ports):
    return {"containers": [{"name": "dns", "image": "coredns:1.11", "ports": ports}]}


def test_same_port_tcp_and_udp_is_no_change():
    """A container opening 53/TCP and 53/UDP: the API server keys container ports by
    containerPort + protocol (k8s.io/api core/v1 Container.Ports listMapKey), so an identical
    render is no change (keyed by containerPort alone, the UDP item overwrote the TCP one and two
    port fields were reported changed that were not)."""
    from handover.tree_diff import against_live, removed_fields
    ports = [{"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
             {"name": "dns", "containerPort": 53, "protocol": "UDP"}]
    live = _dns_container([dict(p) for p in ports])
    assert against_live(_dns_container(ports), live, "spec") == []
    assert removed_fields(_dns_container(ports), _dns_container(ports), live, "spec") == []
    # protocol omitted in the render = TCP (the API default) matches the live TCP item
    no_proto = [{"name": "dns-tcp", "containerPort": 53}, ports[1]]
    assert against_live(_dns_container(no_proto), live, "spec") == []


def test_same_port_other_protocol_is_named_with_its_key():
    from handover.tree_diff import against_live
    live = _dns_container([{"name": "dns", "containerPort": 53, "protocol": "UDP"}])
    desired = _dns_container([{"name": "dns", "containerPort": 53, "protocol": "UDP"},
                              {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"}])
    [d] = against_live(desired, live, "spec")
    assert d.path == "spec.containers[name=dns].ports[containerPort=53,protocol=TCP]"
