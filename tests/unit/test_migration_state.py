from handover.gate import migration_state


def test_secret_looking_values():
    values = {"adminPassword": "s3cr3t-pw", "image": {"tag": "1.0"},
              "env": [{"API_KEY": "abcdef12"}], "enabled": True, "auth": {"token": 123456}}
    assert sorted(p for p, _ in migration_state.secret_looking_values(values)) == [
        "adminPassword", "auth.token", "env[0].API_KEY"]


def test_leaks_names_the_source_not_the_value():
    found = migration_state.leaks(["| grafana | s3cr3t-pw |"],
                                  {"s3cr3t-pw": "Secret logging/grafana key admin-password"})
    assert found == ["Secret logging/grafana key admin-password"]
    assert "s3cr3t-pw" not in found[0]


def test_markdown_sections():
    s = migration_state.MigrationState(
        date="2026-01-01T00:00:00+00:00", cluster="homelab", context="c", server_version="v1.28.0",
        flux_version="2.4.0", gitops_path="/g", branch="main", commit="abc", remote=None,
        helm_releases=[migration_state.ReleaseState("loki", "logging", "loki", "6.21.0", "3.0",
                                                    2, "deployed", "loki")],
        workloads=[], order=[migration_state.Step(1, "loki", "helm", "high", "p", "handover-loki",
                                                  ["suspend first"])],
        pvs=[migration_state.PVState("loki-pv", "Retain", "", "logging/x", "Bound", "10Gi",
                                     True)])
    md = migration_state.to_markdown(s)
    for part in ("## Helm releases", "| loki | logging | loki | 6.21.0", "## Migration order",
                 "| loki-pv | Retain", "## Rollback plan", "- suspend first", "Commit: abc"):
        assert part in md
