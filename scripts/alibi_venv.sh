#!/usr/bin/env bash
# .venv-alibi: the explainer with `method: "anchors"` (alibi 0.9.6: BSL-licensed, numpy<2).
#
# Apart from .venv on purpose: the core pins numpy>=2.2, alibi numpy<2. Installs the `anchors`
# extra of pyproject.toml (the explainer's whole runtime) under constraints-alibi.txt, then
# castml itself editable with --no-deps. Idempotent: a stamp names the hash of the extra and
# the constraints, so a second run is a no-op until one of them changes.
#
#   bash scripts/alibi_venv.sh            build when needed (make anchors-venv)
#   bash scripts/alibi_venv.sh --freeze   rebuild without constraints, rewrite constraints-alibi.txt
#
# Then: .venv-alibi/bin/python -m serving explainer --predictor_host 127.0.0.1:8080 ...
set -euo pipefail
script="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$script")/.."
venv="${CASTML_ALIBI_VENV:-.venv-alibi}"
python="${PYTHON:-$(command -v python3.11 || command -v python3)}"
constraints="constraints-alibi.txt"
freeze=0
[ "${1:-}" = "--freeze" ] && freeze=1

if command -v flock >/dev/null; then
  exec 9<"$script"
  flock 9  # one build at a time (parallel test sessions, make -j)
fi

requirements=$("$python" - <<'PY'
import tomllib
with open("pyproject.toml", "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["optional-dependencies"]["anchors"]))
PY
)
hash=$({ echo "$requirements"; cat "$constraints"; } | sha256sum | cut -c1-12)
stamp="$venv/.installed-$hash"
if [ "$freeze" = 0 ] && [ -f "$stamp" ]; then
  exit 0
fi

started=$(date +%s)
echo "==> creating $venv (alibi 0.9.6, numpy<2) for the anchors explainer"
"$python" -m venv --clear "$venv"
"$venv/bin/pip" install -q --upgrade pip
requirements_file=$(mktemp)
trap 'rm -f "$requirements_file" "$requirements_file.log"' EXIT
echo "$requirements" >"$requirements_file"
if [ "$freeze" = 1 ]; then
  "$venv/bin/pip" install -q -r "$requirements_file"
  {
    echo "# The resolved set of .venv-alibi (the \`anchors\` extra of pyproject.toml), from pip freeze."
    echo "# Regenerate: bash scripts/alibi_venv.sh --freeze"
    "$venv/bin/pip" freeze --exclude-editable
  } >"$constraints"
  hash=$({ echo "$requirements"; cat "$constraints"; } | sha256sum | cut -c1-12)
  stamp="$venv/.installed-$hash"
else
  "$venv/bin/pip" install -q -c "$constraints" -r "$requirements_file"
fi
# setuptools' editable build is chatty on stderr: show it only when the install fails.
if ! "$venv/bin/pip" install -q --no-deps -e . >"$requirements_file.log" 2>&1; then
  cat "$requirements_file.log" >&2
  exit 1
fi
# The explainer's imports, alibi's included: a venv that cannot serve is not stamped.
"$venv/bin/python" -c "import alibi.explainers, mlflow.artifacts, serving.explainer, serving.attribution_chart"
rm -f "$venv"/.installed-*
touch "$stamp"
echo "==> $venv ready in $(($(date +%s) - started))s: $("$venv/bin/python" -c \
  'import alibi, numpy; print(f"alibi {alibi.__version__}, numpy {numpy.__version__}")')"
