"""The GitOps repository and chart sources, read: kustomize builds, entry paths, Helm storage, chart indexes."""
