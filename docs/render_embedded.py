"""Render the embedded models' records (their dcbench.json; fitted families' family.json) into docs/embedded.md.

    python docs/render_embedded.py          # rewrite the generated block
    python docs/render_embedded.py --check  # exit 1 if the block is stale (tests run this)

Numbers in the docs come from these records only, never typed by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "embedded.md"
BEGIN, END = "<!-- BEGIN generated from dcbench/weights/*/dcbench.json -->", "<!-- END generated -->"


def render() -> str:
    lines = [BEGIN]
    for record_file in sorted((ROOT / "dcbench" / "weights").glob("*/dcbench.json")):
        record = json.loads(record_file.read_text())
        lines += [f"### `embedded:{record_file.parent.name}`", "", "| | |", "|---|---|"]
        for section in ("training", "evaluation"):
            lines += _rows(section, record.get(section, {}))
        lines.append("")
    for family_file in sorted((ROOT / "dcbench" / "weights").glob("*/*/family.json")):
        lines += _family(family_file)
    lines.append(END)
    return "\n".join(lines)


def _family(path: Path) -> list[str]:
    """A fitted family (``dcbench fit-baseline`` with ``scorer.fit.family``): one row per member."""
    name = path.parent.relative_to(ROOT / "dcbench" / "weights").as_posix()
    lines = [f"### `embedded:{name}/<member>`", "",
             "| member | model | parameters | steps | train top-1 | val top-1 | wall s |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for member, m in json.loads(path.read_text())["members"].items():
        lines.append(f"| {member} | {_model(m['model'])} | {m['parameters']:,} | {m['steps']} | "
                     f"{m['train_accuracy']} | {m['val_accuracy']} | {m['wall_seconds']} |")
    return [*lines, ""]


def _model(spec: dict | str) -> str:
    """``name`` (the timm architecture) and the options that change it, e.g. `resnet10t` channels=16/32/64/128."""
    if isinstance(spec, str):
        return f"`{spec}`"
    options = [f"{k}={'/'.join(map(str, v)) if isinstance(v, list) else v}" for k, v in spec.items()
               if k not in ("name", "in_chans")]
    return f"`{spec['name']}` {' '.join(options)}".strip()


def _rows(section: str, entries: dict) -> list[str]:
    """One table row per entry; a model of several parts (the shapes world: clip, unet) gets a row per part."""
    rows = []
    for key, value in entries.items():
        if isinstance(value, dict):
            rows += [f"| {section} ({key}): {k} | `{v}` |" for k, v in value.items()]
        else:
            rows.append(f"| {section}: {key} | `{value}` |")
    return rows


def main() -> int:
    text = DOC.read_text()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    updated = head + render() + tail
    if "--check" in sys.argv:
        return 0 if updated == text else 1
    DOC.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
