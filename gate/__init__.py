"""gitops-gate: verify Git revisions, Helm charts and container images before GitOps sync."""

__version__ = "0.1.0"
