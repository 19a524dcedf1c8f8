import json

import pytest
from PIL import Image

from dcbench.data.base import BadImageError, DatasetNotFoundError
from dcbench.data.folder import imagenet_class_names
from dcbench.data.labels import LabelSet
from dcbench.registry import DATASETS


def make_folder(root, classes=("cat", "dog"), per_class=2):
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (10, 12), (40 * i, 80, 120)).save(root / c / f"{i}.png")
    (root / classes[0] / "notes.txt").write_text("not an image")  # ignored: not an image suffix
    return root


def test_imagefolder_reads_classes_and_ids(tmp_path):
    ds = DATASETS.build({"name": "imagefolder", "root": str(make_folder(tmp_path / "d"))})
    assert ds.classes == ["cat", "dog"] and len(ds) == 4
    assert [ds.image_id(i) for i in range(4)] == ["cat/0.png", "cat/1.png", "dog/0.png", "dog/1.png"]
    assert ds.load(3)[1] == 1


def test_corrupt_image_names_the_file(tmp_path):
    root = make_folder(tmp_path / "d")
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG not really")
    ds = DATASETS.build({"name": "imagefolder", "root": str(root)})
    index = [ds.image_id(i) for i in range(len(ds))].index("dog/broken.png")
    with pytest.raises(BadImageError, match=r"broken\.png.*Remove or replace"):
        ds.load(index)


def test_missing_folder_says_where(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"does not exist.*ROOT/<class>"):
        DATASETS.build({"name": "imagefolder", "root": str(tmp_path / "missing")})


def test_missing_torchvision_dataset_is_not_downloaded(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"cifar10 not found.*download: true"):
        DATASETS.build({"name": "cifar10", "root": str(tmp_path)})
    assert not any(tmp_path.iterdir())


def test_imagenet_folder_uses_class_names(tmp_path):
    (tmp_path / "val" / "n01440764").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(tmp_path / "val" / "n01440764" / "a.JPEG")
    ds = DATASETS.build({"name": "imagenet", "root": str(tmp_path)})
    assert ds.classes[0].startswith("tench")


def test_imagenet_a_is_a_subset_of_synsets_with_their_names(tmp_path):
    root = make_folder(tmp_path / "a", classes=("n01498041", "n01531178"), per_class=1)  # stingray, goldfinch
    ds = DATASETS.build({"name": "imagenet-a", "root": str(root)})
    assert [c.split(",")[0] for c in ds.classes] == ["stingray", "goldfinch"] and len(ds) == 2
    (root / "cats").mkdir()
    with pytest.raises(DatasetNotFoundError, match="not ImageNet-1k synsets"):
        DATASETS.build({"name": "imagenet-a", "root": str(root)})


def test_imagenet_v2_maps_class_index_folders_to_names(tmp_path):
    root = make_folder(tmp_path / "v2", classes=("0", "1", "10"), per_class=1)
    ds = DATASETS.build({"name": "imagenet-v2", "root": str(root)})
    # folders sort as text ("0", "1", "10"): each keeps its own index's name
    assert [c.split(",")[0] for c in ds.classes] == ["tench", "goldfish", "brambling"]
    assert ds.load(2)[1] == 2 and ds.image_id(2) == "10/0.png"
    with pytest.raises(DatasetNotFoundError, match="ImageNet-V2 not found"):
        DATASETS.build({"name": "imagenet-v2", "root": str(tmp_path / "missing")})


def make_objectnet(root):
    """A two-class ObjectNet 1.0 layout with its mapping files (real files list 313 folders, 1,000 labels)."""
    for folder in ("alarm_clock", "backpack", "bench"):  # "bench" has no ImageNet class: not used
        (root / "images" / folder).mkdir(parents=True)
        Image.new("RGB", (20, 16), "red").save(root / "images" / folder / "1.png")
    maps = root / "mappings"
    maps.mkdir()
    (maps / "folder_to_objectnet_label.json").write_text(json.dumps(
        {"alarm_clock": "Alarm clock", "backpack": "Backpack", "bench": "Bench"}))
    (maps / "objectnet_to_imagenet_1k.json").write_text(json.dumps(
        {"Backpack": "backpack, back pack, knapsack", "Alarm clock": "analog clock; digital clock"}))
    (maps / "imagenet_to_label_2012_v2").write_text("digital clock\nanalog clock\nbackpack, back pack, knapsack\n")
    (maps / "pytorch_to_imagenet_2012_id.json").write_text(json.dumps({"530": 0, "409": 1, "414": 2}))
    return root


def test_objectnet_keeps_the_imagenet_overlap_and_maps_each_class_to_its_members(tmp_path):
    ds = DATASETS.build({"name": "objectnet", "root": str(make_objectnet(tmp_path / "objectnet-1.0"))})
    assert ds.classes == ["Alarm clock", "Backpack"] and len(ds) == 2
    names = imagenet_class_names()
    assert ds.class_members == [[names[409], names[530]], [names[414]]]
    image, label = ds.load(1)
    assert label == 1 and image.size == (16, 12)  # the 2-pixel frame is cropped
    labels = LabelSet.from_classes(ds.classes, names=ds.class_members)
    assert labels.prompts == (names[409], names[530], names[414]) and labels.prompt_class == (0, 0, 1)


def test_objectnet_without_mappings_says_what_is_missing(tmp_path):
    root = make_objectnet(tmp_path / "objectnet-1.0")
    (root / "mappings" / "objectnet_to_imagenet_1k.json").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"objectnet_to_imagenet_1k\.json missing"):
        DATASETS.build({"name": "objectnet", "root": str(root)})
    (root / "mappings" / "objectnet_to_imagenet_1k.json").write_text(json.dumps({"Backpack": "rucksack"}))
    with pytest.raises(DatasetNotFoundError, match=r"\['rucksack'\].*do not belong together"):
        DATASETS.build({"name": "objectnet", "root": str(root)})
