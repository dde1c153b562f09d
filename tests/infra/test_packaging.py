"""What `sam build` packages and the warehouse bundle: the staged build inputs hold importable
handlers and a dbt project that parses, pins match requirements.txt, the scripts are valid bash,
and the Shiny Server entry point serves the project's app with the bootstrap's settings."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
INFRA = PROJECT_ROOT / "infra"
VENV_BIN = Path(sys.executable).parent


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            found[name.strip().lower()] = version.strip()
    return found


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith(("PG", "DASHBOARD_PG"))
    }
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def staged(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("build")
    subprocess.run([str(INFRA / "stage.sh"), str(out)], check=True, capture_output=True, text=True)
    return out


@pytest.mark.parametrize("requirements", ["etl/requirements.txt", "ingest/requirements.txt"])
def test_lambda_pins_equal_the_project_pins(requirements):
    project = pins(PROJECT_ROOT / "requirements.txt")
    lambda_pins = pins(INFRA / requirements)
    assert lambda_pins
    for name, version in lambda_pins.items():
        assert project.get(name) == version, (
            f"{requirements}: {name}=={version} but requirements.txt has {project.get(name)}"
        )


def test_checkov_is_pinned_for_its_own_venv():
    assert re.fullmatch(r"\d+\.\d+\.\d+", pins(INFRA / "requirements-checkov.txt")["checkov"])
    assert "checkov" not in pins(PROJECT_ROOT / "requirements.txt")


def test_staged_ingest_package_imports_its_handler(staged):
    code = (
        "import ingest, ingest.handler, ingest.validation as v; "
        "assert callable(ingest.handler.lambda_handler); print(ingest.__file__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=staged / "ingest", env=clean_env(), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(str(staged / "ingest" / "ingest"))
    assert (staged / "ingest" / "contract" / "event-v1.schema.json").is_file()


def test_staged_etl_context_imports_the_handler_and_parses_the_dbt_project(staged, tmp_path):
    etl = staged / "etl"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import loader, loader.lambda_handler as h; assert callable(h.handler); print(loader.__file__)",
        ],
        cwd=etl,
        env=clean_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(str(etl / "loader"))
    # what the Dockerfile's build step runs: the staged project must be complete on its own
    env = clean_env(
        PGHOST="build",
        PGPORT="5432",
        PGUSER="build",
        PGPASSWORD="build",
        PGDATABASE="build",
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
    )
    parse = subprocess.run(
        [
            str(VENV_BIN / "dbt"),
            "parse",
            "--project-dir",
            ".",
            "--profiles-dir",
            ".",
            "--target-path",
            str(tmp_path / "target"),
            "--log-path",
            str(tmp_path / "logs"),
        ],
        cwd=etl,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert parse.returncode == 0, parse.stdout[-4000:] + parse.stderr[-2000:]
    assert (tmp_path / "target" / "manifest.json").is_file()


def test_dockerfile_copies_every_staged_path_and_runs_the_loader_handler(staged):
    dockerfile = (INFRA / "etl" / "Dockerfile").read_text()
    assert dockerfile.splitlines()[-1] == 'CMD ["loader.lambda_handler.handler"]'
    assert re.search(r"^FROM public\.ecr\.aws/lambda/python:3\.11$", dockerfile, re.M)
    copied = set()
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            copied.update(line.split()[1:-1])
    staged_paths = {p.name for p in (staged / "etl").iterdir()} - {"Dockerfile"}
    assert staged_paths == copied


@pytest.mark.parametrize(
    "script",
    ["infra/stage.sh", "infra/warehouse/bootstrap.sh", "infra/warehouse/package.sh", "scripts/lint-infra.sh"],
)
def test_scripts_are_valid_executable_bash(script):
    path = PROJECT_ROOT / script
    assert os.access(path, os.X_OK), f"{script} is not executable"
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_shiny_server_entry_point_loads_settings_and_the_app(tmp_path):
    env_file = tmp_path / "dashboard.env"
    env_file.write_text(
        "PGHOST=127.0.0.1\nPGPORT=5432\nPGDATABASE=warehouse_x\n"
        "DASHBOARD_PGUSER=reader_x\nDASHBOARD_PGPASSWORD=secret_x\n"
    )
    code = (
        "import os, runpy, shiny; "
        f"ns = runpy.run_path({str(INFRA / 'warehouse' / 'dashboard_app.py')!r}); "
        "assert isinstance(ns['app'], shiny.App), type(ns['app']); "
        "print(os.environ['PGDATABASE'], os.environ['DASHBOARD_PGUSER'], os.environ['DASHBOARD_PGPASSWORD'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=clean_env(
            CLICKSTREAM_DASHBOARD_ENV=str(env_file), CLICKSTREAM_DASHBOARD_DIR=str(PROJECT_ROOT / "shiny")
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.split()[-3:] == ["warehouse_x", "reader_x", "secret_x"]
