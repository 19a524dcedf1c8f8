"""The README's commands and the generated docs stay true."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.startswith("python3.11 -m venv")]


def test_ci_runs_the_readme_test_command():
    main_job, test_command = readme_commands()[:2]
    assert "dcbench predict" in main_job and "pytest" in test_command
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci_lines


def test_embedded_docs_are_generated_from_the_shipped_records():
    result = subprocess.run([sys.executable, str(ROOT / "docs" / "render_embedded.py"), "--check"])
    assert result.returncode == 0, "docs/embedded.md is stale: run `python docs/render_embedded.py`"


def test_readme_results_are_generated_from_the_published_report():
    result = subprocess.run([sys.executable, str(ROOT / "docs" / "render_results.py"), "--check"])
    assert result.returncode == 0, "README.md is stale: run `python docs/render_results.py`"
