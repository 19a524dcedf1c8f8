"""Winoground (Thrush et al. 2022): 400 hand-made image-text pairs for visio-linguistic compositionality.

Each example holds two images and two captions made of the same words in a different order ("an old
person kisses a young person" / "a young person kisses an old person"); image i matches caption i.
The dataset is gated on the Hugging Face Hub (``facebook/winoground``): accept its terms on the
dataset page and log in (``huggingface-cli login``) before the first run, or give ``root`` a local copy.

Files, as in the dataset repository (and in the copy ``huggingface-cli download facebook/winoground
--repo-type dataset --local-dir DIR`` makes, under ``DIR/data``):

* ``data/examples.jsonl``: one JSON object per line with ``id``, ``image_0``, ``image_1`` (image file
  names without extension), ``caption_0``, ``caption_1``, ``tag`` (the fine-grained linguistic tag),
  ``secondary_tag`` (visual tags, may be empty), ``num_main_preds`` and ``collapsed_tag`` (Object,
  Relation or Both: the kind of swap);
* ``data/images.zip``: ``images/<name>.png``.

A local ``root`` may hold ``examples.jsonl`` with ``images/`` (extracted) or ``images.zip``, directly
or under ``root/data``. Images are read from the zip without extracting it.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from PIL import Image, UnidentifiedImageError

from dcbench.data.base import BadImageError, DatasetNotFoundError
from dcbench.data.pairs import ImagePair, PairDataset
from dcbench.registry import DATASETS

__all__ = ["EXAMPLES_FILE", "IMAGES_FILE", "REPO_ID", "Winoground", "WinogroundPair", "load_examples"]

REPO_ID = "facebook/winoground"
EXAMPLES_FILE = "data/examples.jsonl"
IMAGES_FILE = "data/images.zip"
DATASET_URL = f"https://huggingface.co/datasets/{REPO_ID}"
#: the keys every line of examples.jsonl must have (the others are optional metadata)
REQUIRED_KEYS = ("id", "image_0", "image_1", "caption_0", "caption_1", "collapsed_tag")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"}

ACCESS_HELP = (
    f"Winoground is a gated dataset on the Hugging Face Hub. To use it: (1) log in at {DATASET_URL} and "
    "accept its terms of use ('Access repository'); (2) run `huggingface-cli login` on this machine (`hf auth "
    "login` with huggingface_hub >= 1.0), or set HF_TOKEN; (3) run once with network access (HF_HUB_OFFLINE "
    "unset): the files are then cached and later runs work offline. Or use a local copy: "
    "`dataset: {name: winoground, root: DIR}` with DIR holding examples.jsonl and images/ (or images.zip), "
    f"e.g. made with `huggingface-cli download {REPO_ID} --repo-type dataset --local-dir DIR`."
)


@dataclass(frozen=True)
class WinogroundPair(ImagePair):
    """An :class:`ImagePair` with Winoground's metadata; ``tag`` is the collapsed tag, lower-cased."""

    fine_tag: str = ""  # the fine-grained linguistic tag (the example's ``tag``)
    secondary_tag: str = ""  # visual tags ("Symbolic", "Pragmatics", "Series", ...), may be empty
    num_main_preds: int = 0  # main predicates in the captions (1 or 2)


# ---- images: an extracted folder or the zip ----------------------------------------------------------
class _ImageFolder:
    """``name -> file`` for the images under a folder (names with or without their extension)."""

    def __init__(self, root: Path) -> None:
        self.location = str(root)
        self.files: dict[str, Path] = {}
        for path in sorted(root.rglob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                self.files.setdefault(path.stem, path)
                self.files.setdefault(path.name, path)

    def __contains__(self, name: str) -> bool:
        return name in self.files

    def where(self, name: str) -> str:
        return str(self.files[name])

    def read(self, name: str) -> bytes:
        return self.files[name].read_bytes()


class _ImageZip:
    """``name -> member`` of a zip of images, read without extracting; one open handle per process."""

    def __init__(self, path: Path) -> None:
        self.path, self.location = path, str(path)
        self._handle: tuple[int, zipfile.ZipFile] | None = None
        try:
            with zipfile.ZipFile(path) as archive:
                members = archive.namelist()
        except (zipfile.BadZipFile, OSError) as err:
            raise DatasetNotFoundError(f"cannot read the Winoground image archive {path}: {err}. Delete it and "
                                       "download it again, or give `root` an extracted copy.") from err
        self.members: dict[str, str] = {}
        for member in sorted(members):
            pure = PurePosixPath(member)
            if pure.suffix.lower() in IMAGE_SUFFIXES and "__MACOSX" not in pure.parts:
                self.members.setdefault(pure.stem, member)
                self.members.setdefault(pure.name, member)

    def __contains__(self, name: str) -> bool:
        return name in self.members

    def where(self, name: str) -> str:
        return f"{self.path}:{self.members[name]}"

    def read(self, name: str) -> bytes:
        # A ZipFile handle must not be shared across processes (data loader workers fork): one per pid.
        if self._handle is None or self._handle[0] != os.getpid():
            self._handle = (os.getpid(), zipfile.ZipFile(self.path))
        return self._handle[1].read(self.members[name])

    def __getstate__(self) -> dict[str, Any]:  # picklable for spawned workers: the handle is reopened there
        return {**self.__dict__, "_handle": None}


_Images = _ImageFolder | _ImageZip


# ---- examples --------------------------------------------------------------------------------------
def load_examples(path: str | Path) -> list[dict[str, Any]]:
    """The examples of an ``examples.jsonl`` file, checked for the keys dcbench needs."""
    path = Path(path)
    examples = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                example = json.loads(line)
            except json.JSONDecodeError as err:
                raise DatasetNotFoundError(f"{path}, line {number}, is not JSON ({err}): is this Winoground's "
                                           "examples.jsonl?") from err
            missing = [k for k in REQUIRED_KEYS if not isinstance(example, dict) or k not in example]
            if missing:
                raise DatasetNotFoundError(f"{path}, line {number}, lacks {', '.join(missing)}: Winoground's "
                                           f"examples.jsonl has the keys {', '.join(REQUIRED_KEYS)} on every line")
            examples.append(example)
    if not examples:
        raise DatasetNotFoundError(f"{path} holds no examples")
    ids = [str(e["id"]) for e in examples]
    if len(set(ids)) != len(ids):
        raise DatasetNotFoundError(f"{path} repeats example ids; pair ids must be unique")
    return examples


class Winoground(PairDataset):
    """Winoground's examples as image-text pairs; ids are ``winoground-<example id>``.

    Args:
        examples: the parsed lines of ``examples.jsonl``.
        images: where the images are (a folder or the zip).
        tags: keep only the examples whose collapsed tag is one of these (object, relation, both).
    """

    def __init__(self, examples: Sequence[Mapping[str, Any]], images: _Images,
                 tags: Sequence[str] | None = None) -> None:
        self.images = images
        if tags is not None:
            wanted = {t.lower() for t in tags}
            unknown = wanted - {"object", "relation", "both"}
            if unknown:
                raise ValueError(f"unknown Winoground tag(s) {sorted(unknown)}; the collapsed tags are object, "
                                 "relation and both")
            examples = [e for e in examples if str(e["collapsed_tag"]).lower() in wanted]
        self.examples = [dict(e) for e in examples]
        missing = [name for e in self.examples for name in (str(e["image_0"]), str(e["image_1"]))
                   if name not in images]
        if missing:
            raise DatasetNotFoundError(f"{len(missing)} Winoground image(s) named in examples.jsonl are not in "
                                       f"{images.location}, e.g. {missing[:3]}")

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def tags(self) -> list[str]:
        """The collapsed tag of every example, lower-cased (object, relation, both)."""
        return [str(e["collapsed_tag"]).lower() for e in self.examples]

    def _image(self, name: str) -> Image.Image:
        try:
            with Image.open(io.BytesIO(self.images.read(name))) as image:
                image.load()
                return image.copy()
        except (UnidentifiedImageError, OSError, SyntaxError, KeyError) as err:
            raise BadImageError(f"cannot read Winoground image {self.images.where(name)}: {err}. Download the "
                                "images again (or replace that file in your local copy).") from err

    def load(self, index: int) -> WinogroundPair:
        e = self.examples[index]
        return WinogroundPair(
            images=(self._image(str(e["image_0"])), self._image(str(e["image_1"]))),
            captions=(str(e["caption_0"]), str(e["caption_1"])),
            tag=str(e["collapsed_tag"]).lower(),
            fine_tag=str(e.get("tag") or ""),
            secondary_tag=str(e.get("secondary_tag") or ""),
            num_main_preds=int(e.get("num_main_preds") or 0),
        )

    def pair_id(self, index: int) -> str:
        return f"winoground-{self.examples[index]['id']}"


# ---- where the files come from ---------------------------------------------------------------------
def _local_files(root: Path) -> tuple[Path, Path]:
    """``examples.jsonl`` and the images (a folder or a zip) in a local copy."""
    if not root.is_dir():
        raise DatasetNotFoundError(f"Winoground root {root} does not exist: put examples.jsonl and images/ (or "
                                   f"images.zip) there, or leave `root` out to load it from the Hub. {ACCESS_HELP}")
    for base in (root, root / "data"):
        examples = base / "examples.jsonl"
        if not examples.is_file():
            continue
        for images in (base / "images", base / "images.zip"):
            if images.exists():
                return examples, images
        raise DatasetNotFoundError(f"{base} has examples.jsonl but neither images/ nor images.zip beside it")
    raise DatasetNotFoundError(f"no examples.jsonl in {root} or {root / 'data'}: a local Winoground copy holds "
                               "examples.jsonl and images/ (or images.zip)")


def _hub_file(filename: str, revision: str | None, cache_dir: str | None) -> Path:
    """One file of the dataset repository (from the cache when it is there); a clear error when it cannot be had."""
    import huggingface_hub

    try:
        from huggingface_hub.errors import (
            EntryNotFoundError,
            GatedRepoError,
            HfHubHTTPError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
        )
    except ImportError:  # huggingface_hub before the errors module
        from huggingface_hub.utils import (  # type: ignore[no-redef]
            EntryNotFoundError,
            GatedRepoError,
            HfHubHTTPError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
        )

    where = f"{REPO_ID}/{filename}" + (f" at revision {revision}" if revision else "")
    try:
        return Path(huggingface_hub.hf_hub_download(repo_id=REPO_ID, repo_type="dataset", filename=filename,
                                                    revision=revision, cache_dir=cache_dir))
    except GatedRepoError as err:
        reason = f"access to {where} was refused: this account has not accepted the terms, or no token was sent"
        raise DatasetNotFoundError(f"{reason}. {ACCESS_HELP}") from err
    except RepositoryNotFoundError as err:
        reason = f"the Hub does not show {REPO_ID} to this session (not logged in, or no access)"
        raise DatasetNotFoundError(f"{reason}. {ACCESS_HELP}") from err
    except LocalEntryNotFoundError as err:  # offline (HF_HUB_OFFLINE=1, no network) and not in the cache
        reason = f"{where} is not in the Hugging Face cache and the Hub cannot be reached (offline or no network)"
        raise DatasetNotFoundError(f"{reason}. {ACCESS_HELP}") from err
    except EntryNotFoundError as err:  # the repository answered, but has no such file: its layout changed
        raise DatasetNotFoundError(
            f"{where} does not exist: the dataset repository's layout is not the one dcbench knows "
            f"({EXAMPLES_FILE} and {IMAGES_FILE}). Download the repository and give its data as `root` "
            "(examples.jsonl and images/ or images.zip), or pin `revision` to a commit with that layout.") from err
    except HfHubHTTPError as err:
        status = getattr(getattr(err, "response", None), "status_code", None)
        if status in (401, 403):
            reason = f"the Hub refused {where} (HTTP {status}: not logged in, or the terms are not accepted)"
        else:
            reason = f"downloading {where} failed ({err})"
        raise DatasetNotFoundError(f"{reason}. {ACCESS_HELP}") from err


@DATASETS.register("winoground")
def winoground(root: str | None = None, revision: str | None = None, cache_dir: str | None = None,
               tags: str | list[str] | None = None) -> Winoground:
    """Winoground (Thrush et al. 2022): 400 image-text pairs from the gated Hub dataset (or a local copy).

    ``root``: a local copy (examples.jsonl with images/ or images.zip, directly or under ``data/``); without
    it the files come from the Hub (``revision``, ``cache_dir`` as ``hf_hub_download``'s), which needs the
    dataset's terms accepted and a login. ``tags``: keep only these collapsed tags (object, relation, both).
    Pair tags are the collapsed tags, lower-cased; :class:`WinogroundPair` also carries the fine tags.
    """
    if root is not None:
        examples_path, images_path = _local_files(Path(root).expanduser())
    else:
        examples_path = _hub_file(EXAMPLES_FILE, revision, cache_dir)
        images_path = _hub_file(IMAGES_FILE, revision, cache_dir)
    images: _Images = _ImageFolder(images_path) if images_path.is_dir() else _ImageZip(images_path)
    return Winoground(load_examples(examples_path), images, [tags] if isinstance(tags, str) else tags)
