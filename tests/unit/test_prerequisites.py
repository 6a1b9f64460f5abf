from handover.gate import prerequisites
from handover.gate.prerequisites import ServerVersion


def test_old_server_fails_naming_minimum():
    f = prerequisites.server_version_findings(ServerVersion(1, 20, "v1.20.2"), "2.4.0", "homelab")
    assert len(f) == 1
    assert "v1.20.2 is below Flux 2.4.0's minimum 1.28" in f[0].problem
    assert "cluster 'homelab'" in f[0].subject


def test_rehearsal_is_named():
    f = prerequisites.server_version_findings(ServerVersion(1, 20, "v1.20.2"), "2.4.0", "homelab",
                                              rehearsal=True)
    assert "rehearsal cluster 'homelab'" in f[0].subject


def test_new_enough_server_passes():
    assert prerequisites.server_version_findings(ServerVersion(1, 28, "v1.28.0"), "2.4.0",
                                                 "homelab") == []
    assert prerequisites.server_version_findings(ServerVersion(1, 33, "v1.33.1+k3s1"), "2.8.0",
                                                 "homelab") == []
    assert prerequisites.server_version_findings(ServerVersion(1, 32, "v1.32.3"), "2.8.0",
                                                 "homelab")


def test_kubectl_version_rules():
    assert prerequisites.kubectl_findings((1, 32, "v1.32.3")) == []
    assert "older than 1.27" in prerequisites.kubectl_findings((1, 26, "v1.26.0"))[0].problem
    assert "not usable" in prerequisites.kubectl_findings(None, "no such file")[0].problem


def test_pinned_kubectl_is_new_enough():
    assert prerequisites.check_kubectl() == []
