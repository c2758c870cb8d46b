"""Shared fixtures: the test authority's real parts, registered as pytest plugins."""

pytest_plugins = [
    "testkit.plugin_registry",
    "testkit.plugin_sigstore",
    "testkit.plugin_git",
]
