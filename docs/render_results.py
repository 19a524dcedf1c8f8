"""Publish a finished `dcbench report` run into docs/results/ and its tables into the README.

    python docs/render_results.py --from runs/report   # copy report.md, report.json, figures/; render
    python docs/render_results.py                      # re-render the README block from docs/results/
    python docs/render_results.py --check              # exit 1 if the README block is stale (tests run this)

The README's numbers are the tables of docs/results/zero_shot/report.md, copied verbatim: never typed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results" / "zero_shot"
README = ROOT / "README.md"
BEGIN = "<!-- BEGIN generated from docs/results/zero_shot/report.md -->"
END = "<!-- END generated -->"


def publish(run_dir: Path) -> None:
    """Copy the report (not the runs: records and W&B files stay in the run directory) into docs/results."""
    if not (run_dir / "report.json").is_file():
        sys.exit(f"{run_dir}/report.json not found: run `dcbench report --run-dir {run_dir}` first")
    if RESULTS.exists():
        shutil.rmtree(RESULTS)
    RESULTS.mkdir(parents=True)
    for name in ("report.md", "report.json"):
        shutil.copy(run_dir / name, RESULTS / name)
    shutil.copytree(run_dir / "figures", RESULTS / "figures")


def _section(markdown: str, title: str) -> list[str]:
    """The lines of a `## title` section of report.md, without its heading."""
    lines, inside = [], False
    for line in markdown.splitlines():
        if line.startswith("## "):
            inside = line[3:].startswith(title)
            continue
        if inside:
            lines.append(line)
    return lines


def render() -> str:
    report = (RESULTS / "report.md").read_text()
    meta = [line for line in report.splitlines() if line.startswith("- generated")]
    lines = [BEGIN, "", *meta, "", *_section(report, "Results")]
    for line in report.splitlines():
        if line.startswith("## ") and "by swap type" in line:
            lines += [f"**{line[3:]}**", *_section(report, line[3:])]
    lines += ["Figures, the per-task tables and the command that made them: "
              "[docs/results/zero_shot/report.md](docs/results/zero_shot/report.md).", "", END]
    return "\n".join(line for i, line in enumerate(lines) if line or (i and lines[i - 1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="run_dir", type=Path, help="a finished `dcbench report` run directory")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    if args.run_dir:
        publish(args.run_dir)
    text = README.read_text()
    if BEGIN not in text or END not in text:
        sys.exit(f"README.md has no {BEGIN} ... {END} block")
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    updated = head + render() + tail
    if args.check:
        return 0 if updated == text else 1
    README.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
