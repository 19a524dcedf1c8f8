"""Render the embedded models' training and evaluation records (their dcbench.json) into docs/embedded.md.

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
        training, evaluation = record["training"], record.get("evaluation", {})
        lines += [f"### `embedded:{record_file.parent.name}`", "", "| | |", "|---|---|"]
        lines += [f"| training: {k} | `{v}` |" for k, v in training.items()]
        lines += [f"| evaluation: {k} | `{v}` |" for k, v in evaluation.items()]
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


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
