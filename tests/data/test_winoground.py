"""The winoground pair dataset on a tiny fake copy (nothing is downloaded: the Hub is monkeypatched or offline)."""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub
import numpy as np
import pytest
import torch
from huggingface_hub import errors as hub_errors
from PIL import Image

from dcbench.config import ConfigError
from dcbench.data.base import BadImageError, DatasetNotFoundError
from dcbench.data.pairs import MatchingDataModule, PairDataset
from dcbench.data.winoground import EXAMPLES_FILE, IMAGES_FILE, REPO_ID, Winoground, WinogroundPair
from dcbench.registry import DATASETS

# The format of facebook/winoground's data/examples.jsonl (captions made up; same words, another order).
EXAMPLES = [
    {"id": 0, "image_0": "ex_0_img_0", "image_1": "ex_0_img_1", "caption_0": "a red cup on a blue book",
     "caption_1": "a blue cup on a red book", "tag": "Adjective-Color", "secondary_tag": "",
     "num_main_preds": 1, "collapsed_tag": "Object"},
    {"id": 1, "image_0": "ex_1_img_0", "image_1": "ex_1_img_1", "caption_0": "the dog chases the cat",
     "caption_1": "the cat chases the dog", "tag": "Noun", "secondary_tag": "Pragmatics",
     "num_main_preds": 1, "collapsed_tag": "Relation"},
    {"id": 2, "image_0": "ex_2_img_0", "image_1": "ex_2_img_1", "caption_0": "some grass in a mug",
     "caption_1": "a mug in some grass", "tag": "Scope, Preposition", "secondary_tag": "Symbolic",
     "num_main_preds": 2, "collapsed_tag": "Both"},
]
SIZES = [(12, 8), (8, 8), (10, 14)]  # (width, height) per example: the datamodule resizes and crops


def _pixels(example: int, image: int) -> np.ndarray:
    w, h = SIZES[example]
    return np.random.default_rng([example, image]).integers(0, 256, (h, w, 3), dtype=np.uint8)


def write_fake_winoground(root: Path, layout: str = "folder") -> Path:
    """A fake copy: ``folder`` (examples.jsonl + images/), ``zip`` (+ images.zip) or ``repo`` (data/ of the Hub)."""
    base = root / "data" if layout == "repo" else root
    base.mkdir(parents=True, exist_ok=True)
    (base / "examples.jsonl").write_text("".join(json.dumps(e) + "\n" for e in EXAMPLES))
    images = {}
    for k in range(len(EXAMPLES)):
        for i in range(2):
            image = Image.fromarray(_pixels(k, i))
            if (k, i) == (1, 1):
                image = image.convert("RGBA")  # Winoground has RGBA PNGs too
            buffer = Path(root / "tmp.png")
            image.save(buffer)
            images[f"ex_{k}_img_{i}.png"] = buffer.read_bytes()
            buffer.unlink()
    if layout == "folder":
        (base / "images").mkdir()
        for name, data in images.items():
            (base / "images" / name).write_bytes(data)
    else:  # as the Hub's data/images.zip: images/<name>.png
        with zipfile.ZipFile(base / "images.zip", "w") as archive:
            for name, data in images.items():
                archive.writestr(f"images/{name}", data)
    return root


@pytest.fixture
def fake_folder(tmp_path: Path) -> Path:
    return write_fake_winoground(tmp_path / "winoground")


@pytest.fixture
def fake_zip(tmp_path: Path) -> Path:
    return write_fake_winoground(tmp_path / "winoground-zip", "zip")


def _rgb(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


@pytest.mark.parametrize("layout", ["folder", "zip", "repo"])
def test_local_copy_loads_pairs_with_tags_and_ids(tmp_path, layout):
    dataset = DATASETS.build({"name": "winoground", "root": str(write_fake_winoground(tmp_path / "w", layout))})
    assert isinstance(dataset, PairDataset) and len(dataset) == len(EXAMPLES)
    assert [dataset.pair_id(i) for i in range(3)] == ["winoground-0", "winoground-1", "winoground-2"]
    assert dataset.tags == ["object", "relation", "both"]
    for k, example in enumerate(EXAMPLES):
        pair = dataset[k]
        assert isinstance(pair, WinogroundPair)
        assert pair.captions == (example["caption_0"], example["caption_1"])
        assert pair.tag == example["collapsed_tag"].lower()
        assert (pair.fine_tag, pair.secondary_tag, pair.num_main_preds) == (
            example["tag"], example["secondary_tag"], example["num_main_preds"])
        for i in range(2):  # image i is the file image_i names, pixel for pixel
            assert np.array_equal(_rgb(pair.images[i]), _pixels(k, i))


def test_tags_filter_keeps_the_ids(fake_folder):
    dataset = DATASETS.build({"name": "winoground", "root": str(fake_folder), "tags": ["Relation", "both"]})
    assert [dataset.pair_id(i) for i in range(len(dataset))] == ["winoground-1", "winoground-2"]
    assert DATASETS.build({"name": "winoground", "root": str(fake_folder), "tags": "object"}).tags == ["object"]
    with pytest.raises(ConfigError, match="collapsed tags are object, relation and both"):
        DATASETS.build({"name": "winoground", "root": str(fake_folder), "tags": ["attribute"]})


def test_matching_datamodule_batches_pairs(fake_zip):
    datamodule = MatchingDataModule({"name": "winoground", "root": str(fake_zip)}, batch_size=2, image_size=8,
                                    skip_ids={"winoground-1"})
    datamodule.setup("predict")
    assert datamodule.all_ids == ["winoground-0", "winoground-1", "winoground-2"]
    batches = list(datamodule.predict_dataloader())
    assert [b["id"] for b in batches] == [["winoground-0", "winoground-2"]]
    batch = batches[0]
    assert batch["images"].shape == (2, 2, 3, 8, 8)
    assert float(batch["images"].min()) >= -1 and float(batch["images"].max()) <= 1
    assert batch["tag"] == ["object", "both"]
    assert batch["captions"][1] == [EXAMPLES[2]["caption_0"], EXAMPLES[2]["caption_1"]]
    assert not torch.equal(batch["images"][0, 0], batch["images"][0, 1])


def test_zip_dataset_survives_pickling_after_use(fake_zip):
    """Data loader workers may be spawned: the dataset (with an open zip) is pickled and reopens the zip."""
    dataset = DATASETS.build({"name": "winoground", "root": str(fake_zip)})
    first = _rgb(dataset[0].images[0])
    copy = pickle.loads(pickle.dumps(dataset))
    assert np.array_equal(_rgb(copy[0].images[0]), first)


def test_hub_files_are_the_repos_data_files(tmp_path, monkeypatch):
    repo = write_fake_winoground(tmp_path / "hub", "repo")
    calls = []

    def download(repo_id, filename, repo_type=None, revision=None, cache_dir=None, **kwargs):
        calls.append((repo_id, repo_type, filename, revision, cache_dir))
        return str(repo / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    dataset = DATASETS.build({"name": "winoground", "revision": "abc123"})
    assert len(dataset) == 3 and dataset[2].captions[1] == EXAMPLES[2]["caption_1"]
    assert calls == [(REPO_ID, "dataset", EXAMPLES_FILE, "abc123", None), (REPO_ID, "dataset", IMAGES_FILE, "abc123",
                                                                          None)]


def _hub_error(cls: type[Exception], status: int | None = None) -> Exception:
    """A huggingface_hub error without an HTTP response (their constructors want one, differently per version)."""
    err = cls.__new__(cls, "simulated")
    BaseException.__init__(err, "simulated")
    if status is not None:
        err.response = SimpleNamespace(status_code=status)
    return err


def _assert_says_how_to_get_access(message: str) -> None:
    assert "gated" in message
    assert "https://huggingface.co/datasets/facebook/winoground" in message
    assert "huggingface-cli login" in message
    assert "root: DIR" in message


@pytest.mark.parametrize(("error", "says"), [
    (_hub_error(hub_errors.GatedRepoError, 401), "refused"),
    (_hub_error(hub_errors.RepositoryNotFoundError, 401), "not logged in"),
    (hub_errors.LocalEntryNotFoundError("not in cache, offline"), "offline"),
    (_hub_error(hub_errors.HfHubHTTPError, 403), "HTTP 403"),
], ids=["gated", "not-found", "offline", "forbidden"])
def test_unavailable_hub_is_a_clear_dataset_error(monkeypatch, error, says):
    def download(*args, **kwargs):
        raise error

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    with pytest.raises(DatasetNotFoundError, match=says) as info:
        DATASETS.build("winoground")
    _assert_says_how_to_get_access(str(info.value))


def test_missing_repo_file_says_the_layout_changed(monkeypatch):
    cls = getattr(hub_errors, "RemoteEntryNotFoundError", hub_errors.EntryNotFoundError)

    def download(*args, **kwargs):
        raise _hub_error(cls, 404)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    with pytest.raises(DatasetNotFoundError, match="layout"):
        DATASETS.build("winoground")


def test_offline_without_a_cached_copy_is_a_clear_dataset_error(monkeypatch, tmp_path):
    """The real hf_hub_download, offline, with an empty cache: no network is touched."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DatasetNotFoundError, match="offline") as info:
        DATASETS.build({"name": "winoground", "cache_dir": str(tmp_path / "empty-cache")})
    _assert_says_how_to_get_access(str(info.value))


def test_broken_local_copies_say_what_is_wrong(tmp_path, fake_folder):
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        DATASETS.build({"name": "winoground", "root": str(tmp_path / "absent")})
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match=r"no examples\.jsonl"):
        DATASETS.build({"name": "winoground", "root": str(tmp_path / "empty")})
    (fake_folder / "images" / "ex_2_img_1.png").unlink()
    with pytest.raises(DatasetNotFoundError, match="ex_2_img_1"):
        DATASETS.build({"name": "winoground", "root": str(fake_folder)})
    (fake_folder / "examples.jsonl").write_text(json.dumps({"id": 0, "image_0": "ex_0_img_0"}) + "\n")
    with pytest.raises(DatasetNotFoundError, match="lacks image_1, caption_0, caption_1, collapsed_tag"):
        DATASETS.build({"name": "winoground", "root": str(fake_folder)})


def test_undecodable_image_names_the_file(fake_folder):
    (fake_folder / "images" / "ex_1_img_0.png").write_bytes(b"not a png")
    dataset = DATASETS.build({"name": "winoground", "root": str(fake_folder)})
    assert isinstance(dataset, Winoground)
    dataset.load(0)
    with pytest.raises(BadImageError, match="ex_1_img_0"):
        dataset.load(1)


def test_registered_with_a_description():
    assert DATASETS.get("winoground").__doc__.startswith("Winoground (Thrush et al. 2022)")
