"""make lint fails on a violation: the project's own ruff and sqlfluff settings reject
badly styled code (checked on copies outside the tree, so the tree stays clean)."""

import shutil
import subprocess

from conftest import PROJECT_ROOT, VENV_BIN


def test_ruff_with_project_settings_rejects_a_violation(tmp_path):
    shutil.copy(PROJECT_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nimport sys\n\n\ndef f(x):\n    return eval(x)\n")
    result = subprocess.run(
        [str(VENV_BIN / "ruff"), "check", str(bad)], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "F401" in result.stdout  # unused imports


def test_sqlfluff_with_project_settings_rejects_a_violation(tmp_path):
    config = (PROJECT_ROOT / ".sqlfluff").read_text().replace("templater = dbt", "templater = jinja")
    (tmp_path / ".sqlfluff").write_text(config)
    bad = tmp_path / "bad_model.sql"
    bad.write_text("SELECT A.ID, b.name\nFROM events A JOIN users b ON A.ID = b.id\n")
    result = subprocess.run(
        [str(VENV_BIN / "sqlfluff"), "lint", str(bad), "--disable-progress-bar"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0, result.stdout
    assert "CP01" in result.stdout  # upper-case keywords


def test_lint_script_runs_every_linter_and_stops_on_failure():
    script = (PROJECT_ROOT / "scripts" / "lint.sh").read_text()
    assert "set -euo pipefail" in script
    for linter in ("ruff check", "ruff format --check", "sqlfluff lint models", "lint-infra.sh"):
        assert linter in script
    infra = (PROJECT_ROOT / "scripts" / "lint-infra.sh").read_text()
    assert "cfn-lint" in infra and "checkov" in infra
