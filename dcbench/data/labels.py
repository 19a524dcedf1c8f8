"""Label sets: the candidate conditions a classifier compares, and the class each one stands for.

Several prompts may stand for one class (the reference CSV allows it, template ensembles need it).
``classes`` is the class order of every per-class output (the ``classes_`` of scikit-learn).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LabelSet", "LabelSetError", "load_templates"]

CSV_COLUMNS = ("prompt", "classname", "classidx")


class LabelSetError(ValueError):
    """An empty or inconsistent label set, or a malformed prompt file."""


@dataclass(frozen=True)
class LabelSet:
    """Class names plus the candidate prompts (one or more per class)."""

    classes: tuple[str, ...]
    prompts: tuple[str, ...]
    prompt_class: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.classes:
            raise LabelSetError("the label set is empty: give at least one class")
        if len(self.prompts) != len(self.prompt_class):
            raise LabelSetError("prompts and prompt_class must have the same length")
        bad = sorted({c for c in self.prompt_class if not 0 <= c < len(self.classes)})
        if bad:
            raise LabelSetError(f"prompts refer to class indices {bad}, but there are {len(self.classes)} classes")
        missing = sorted(set(range(len(self.classes))) - set(self.prompt_class))
        if missing:
            names = ", ".join(repr(self.classes[i]) for i in missing[:5])
            raise LabelSetError(f"classes {names} have no prompt, so they could never be predicted; "
                                "add a prompt for each class")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, keep: Sequence[int]) -> LabelSet:
        """The classes ``keep`` (in that order) with all their prompts; class k of the result is ``keep[k]``."""
        new_index = {old: new for new, old in enumerate(keep)}
        pairs = [(p, new_index[c]) for p, c in zip(self.prompts, self.prompt_class, strict=True) if c in new_index]
        return LabelSet(tuple(self.classes[i] for i in keep), tuple(p for p, _ in pairs), tuple(c for _, c in pairs))

    @classmethod
    def from_classes(cls, classes: Sequence[str], templates: Sequence[str] = ("{}",),
                     names: Sequence[Sequence[str]] | None = None) -> LabelSet:
        """One prompt per (class, name, template); ``{}`` in a template is replaced by the name.

        ``names``: the names each class goes by, when a class stands for several (each ObjectNet class
        covers one or more ImageNet classes); by default a class goes by its own name.
        """
        if names is None:
            names = [[name] for name in classes]
        if len(names) != len(classes):
            raise LabelSetError(f"{len(names)} name lists given for {len(classes)} classes")
        if not templates:
            raise LabelSetError("the template list is empty: give at least one template such as 'a photo of a {}.'")
        bad = [t for t in templates if "{}" not in t]
        if bad:
            raise LabelSetError(f"templates must contain '{{}}' where the class name goes: {bad[:3]}")
        prompts, owners = [], []
        for i, class_names in enumerate(names):
            for name in class_names:
                for template in templates:
                    prompts.append(template.replace("{}", name))
                    owners.append(i)
        return cls(tuple(classes), tuple(prompts), tuple(owners))

    @classmethod
    def from_csv(cls, path: str | Path, classes: Sequence[str] | None = None) -> LabelSet:
        """Read the reference format: columns ``prompt,classname,classidx``, several rows per class allowed.

        ``classes`` (the dataset's) fixes the number of classes; names come from the file.
        """
        path = Path(path)
        if not path.is_file():
            raise LabelSetError(f"prompt file {path} does not exist")
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            missing = [c for c in CSV_COLUMNS if c not in header]
            if missing:
                raise LabelSetError(f"prompt file {path} lacks column(s) {', '.join(missing)}; expected a header "
                                    f"line '{','.join(CSV_COLUMNS)}' (the reference format), found {header}")
            rows = list(reader)
        if not rows:
            raise LabelSetError(f"prompt file {path} has a header but no prompts")
        names: dict[int, str] = {}
        prompts, owners = [], []
        for line, row in enumerate(rows, start=2):
            try:
                idx = int(row["classidx"])
            except (TypeError, ValueError):
                raise LabelSetError(f"{path}:{line}: classidx {row['classidx']!r} is not an integer") from None
            if not row["prompt"]:
                raise LabelSetError(f"{path}:{line}: empty prompt")
            names.setdefault(idx, row["classname"])
            prompts.append(row["prompt"])
            owners.append(idx)
        n = len(classes) if classes is not None else max(names) + 1
        if classes is not None and max(names) >= n:
            raise LabelSetError(f"prompt file {path} uses classidx up to {max(names)}, "
                                f"but the dataset has {n} classes")
        class_names = tuple(names.get(i, classes[i] if classes is not None else str(i)) for i in range(n))
        return cls(class_names, tuple(prompts), tuple(owners))


def load_templates(spec: str | Sequence[str]) -> list[str]:
    """Templates from a list, or from a text file with one template per line."""
    if isinstance(spec, str):
        path = Path(spec)
        if not path.is_file():
            raise LabelSetError(f"template file {path} does not exist (give a list of templates or a text file)")
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return list(spec)
