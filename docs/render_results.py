"""Publish finished `dcbench report` / `dcbench bench` runs into docs/results/ and their tables into the README.

    python docs/render_results.py --from runs/report         # copy report.md, report.json, figures/; render
    python docs/render_results.py --from-bench runs/bench    # copy bench.json, figures/; render
    python docs/render_results.py --from-supervised runs/supervised   # the supervised study's report
    python docs/render_results.py                            # re-render the README blocks from docs/results/
    python docs/render_results.py --check                    # exit 1 if a README block is stale (tests run this)

The README's numbers are the tables of docs/results/zero_shot/report.md and docs/results/supervised/report.md
(copied verbatim) and tables rendered from docs/results/bench/bench.json: never typed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results" / "zero_shot"
BENCH = ROOT / "docs" / "results" / "bench"
SUPERVISED = ROOT / "docs" / "results" / "supervised"
README = ROOT / "README.md"
BEGIN = "<!-- BEGIN generated from docs/results/zero_shot/report.md -->"
BENCH_BEGIN = "<!-- BEGIN generated from docs/results/bench/bench.json -->"
SUPERVISED_BEGIN = "<!-- BEGIN generated from docs/results/supervised/report.md -->"
END = "<!-- END generated -->"


def publish(run_dir: Path, target: Path, files: tuple[str, ...], command: str) -> None:
    """Copy a run's summary and figures (not its records, caches or W&B files) into docs/results."""
    if not (run_dir / files[-1]).is_file():
        sys.exit(f"{run_dir}/{files[-1]} not found: run `{command} --run-dir {run_dir}` first")
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name in files:
        shutil.copy(run_dir / name, target / name)
    shutil.copytree(run_dir / "figures", target / "figures")


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


def render_supervised() -> str:
    """The supervised study: its results table, its effective-robustness section and plot."""
    report = (SUPERVISED / "report.md").read_text()
    meta = [line for line in report.splitlines() if line.startswith("- generated")]
    robustness = next(line[3:] for line in report.splitlines() if line.startswith("## Effective robustness"))
    lines = [SUPERVISED_BEGIN, "", *meta, "", *_section(report, "Results"), f"**{robustness}**",
             *_section(report, robustness), "",
             "![effective robustness](docs/results/supervised/figures/effective_robustness.png)", "",
             "Figures and the command that made them: "
             "[docs/results/supervised/report.md](docs/results/supervised/report.md).", "", END]
    return "\n".join(line for i, line in enumerate(lines) if line or (i and lines[i - 1]))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def render_bench() -> str:
    """Per task: every strategy's accuracy and cost, nfe_ratio, wall_ratio; then cost vs classes; figures."""
    bench = json.loads((BENCH / "bench.json").read_text())
    where = f"Measured on {bench['device']} with {bench['threads']} threads, seed {bench['seed']}."
    lines = [BENCH_BEGIN, "", where, ""]
    for name, task in bench["tasks"].items():
        lines += [f"**{name}** ({task['n_images']} test images, {task['n_classes']} classes)", "",
                  "| strategy | group | top-1 % | NFE/img | s/img |", "|---|---|---:|---:|---:|"]
        lines += [f"| {r['name']} | {r['group']} | {_pct(r['accuracy'])} | {r['nfe_per_image']:,.0f} | "
                  f"{r['seconds_per_image']:.3g} |" for r in task["strategies"]]
        ratio = task["nfe_ratio"]
        lines += ["", f"- nfe_ratio: {'not reached' if ratio is None else f'{ratio:.3f}'}"
                      f" (reference {task['reference']} at {_pct(task['reference_accuracy'])} %, "
                      f"{task['reference_nfe']:,.0f} NFE/img; matched by {task['matched_by'] or '-'})"]
        if "wall" in task:
            w = task["wall"]
            lines.append(f"- wall_ratio: {w['wall_ratio']:.2f} (dcbench {w['dcbench_seconds_per_image']:.3g} s/img vs "
                         f"reference loop {w['reference_seconds_per_image']:.3g} s/img at staged "
                         f"{w['schedule']['n_samples']}/{w['schedule']['to_keep']}, {w['n_images']} images, median "
                         f"of {w['repeats']}; identical predictions: {w['identical_predictions']})")
        lines.append("")
    if "classes" in bench:
        c = bench["classes"]
        fits = ", ".join(f"{n}: NFE ~ classes^{s['exponent']:.2f}" for n, s in c["strategies"].items())
        lines += [f"Cost vs classes on {c['task']} ({c['n_images']} images per point): {fits}.", ""]
    lines += [f"Targets: `{json.dumps(bench['targets'])}`", ""]
    lines += [f"![{p.stem}](docs/results/bench/figures/{p.name})" for p in sorted((BENCH / "figures").glob("*.png"))]
    return "\n".join([*lines, "", END])


def _replace(text: str, begin: str, body: str) -> str:
    if begin not in text:
        sys.exit(f"README.md has no {begin} ... {END} block")
    head, _, rest = text.partition(begin)
    _, _, tail = rest.partition(END)
    return head + body + tail


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="run_dir", type=Path, help="a finished `dcbench report` run directory")
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--from-bench", dest="bench_dir", type=Path, help="a finished `dcbench bench` run directory")
    parser.add_argument("--from-supervised", dest="supervised_dir", type=Path,
                        help="a finished `dcbench report --config configs/embedded/supervised.yaml` run directory")
    args = parser.parse_args()
    if args.run_dir:
        publish(args.run_dir, RESULTS, ("report.md", "report.json"), "dcbench report")
    if args.bench_dir:
        publish(args.bench_dir, BENCH, ("bench.json",), "dcbench bench")
    if args.supervised_dir:
        publish(args.supervised_dir, SUPERVISED, ("report.md", "report.json"), "dcbench report")
    text = README.read_text()
    updated = _replace(text, BEGIN, render())
    if (BENCH / "bench.json").is_file():
        updated = _replace(updated, BENCH_BEGIN, render_bench())
    if (SUPERVISED / "report.md").is_file():
        updated = _replace(updated, SUPERVISED_BEGIN, render_supervised())
    if args.check:
        return 0 if updated == text else 1
    README.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
