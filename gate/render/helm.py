"""Helm charts: the interface is here, the rendering arrives with chart verification.

A chart must be verified (``.prov`` or an OCI signature) *before* it is
rendered, and what is rendered must be the exact archive that was verified,
never a re-fetch. That is the chart verification issue's work; until it lands
a chart source is a clear ``renderer-unavailable`` (could not decide), never a
silent fallback to treating ``templates/`` as plain YAML.

The plan, so the request fields fit: ``helm template <release_name> <chart>``
with ``--namespace``, ``--kube-version``, one ``--api-versions`` per entry,
one ``--values`` per values file (each confined to the source directory),
``--skip-schema-validation`` (``values.schema.json`` ``$ref`` can load
``file://`` and ``http(s)://``), never ``--dry-run=server`` (``lookup`` would
read the cluster), isolated ``HELM_CACHE_HOME``/``HELM_CONFIG_HOME``/
``HELM_DATA_HOME``/``HELM_PLUGINS`` under the throw-away home, all through
``gate.render.process.run_tool``.
"""

from __future__ import annotations

from gate.errors import RenderError
from gate.render.base import Rendered, RenderRequest

__all__ = ["HelmRenderer"]


class HelmRenderer:
    name: str = "helm"

    def render(self, request: RenderRequest) -> Rendered:
        raise RenderError(
            f"{request.source_dir} is a Helm chart; Helm rendering arrives with the chart "
            "verification issue and is not available in this build",
            reason="renderer-unavailable",
            found=f"Chart.yaml in {request.source_dir}",
            expected="plain manifests or a kustomization",
            hint="render the chart in a verified pipeline step, or wait for chart support",
        )
