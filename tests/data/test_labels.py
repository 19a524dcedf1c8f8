import pytest

from dcbench.data.labels import LabelSet, LabelSetError, load_templates


def write(tmp_path, text, name="prompts.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_reference_csv_with_several_prompts_per_class(tmp_path):
    path = write(tmp_path, "prompt,classname,classidx\na photo of a cat.,cat,0\na cat.,cat,0\na dog.,dog,1\n")
    labels = LabelSet.from_csv(path, ["cat", "dog"])
    assert labels.classes == ("cat", "dog")
    assert labels.prompts == ("a photo of a cat.", "a cat.", "a dog.")
    assert labels.prompt_class == (0, 0, 1)


def test_csv_missing_columns_names_them(tmp_path):
    path = write(tmp_path, "prompt,label\na cat.,0\n")
    with pytest.raises(LabelSetError, match=r"lacks column.*classname, classidx"):
        LabelSet.from_csv(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [("prompt,classname,classidx\n", "no prompts"),
     ("prompt,classname,classidx\na cat.,cat,zero\n", "not an integer"),
     ("prompt,classname,classidx\na cat.,cat,0\na dog.,dog,5\n", "classidx up to 5"),
     ("prompt,classname,classidx\na cat.,cat,0\n", "no prompt")],
)
def test_malformed_csv(tmp_path, text, message):
    with pytest.raises(LabelSetError, match=message):
        LabelSet.from_csv(write(tmp_path, text), ["cat", "dog"])


def test_missing_csv(tmp_path):
    with pytest.raises(LabelSetError, match=r"does not exist"):
        LabelSet.from_csv(tmp_path / "nope.csv")


def test_templates_and_empty_inputs(tmp_path):
    labels = LabelSet.from_classes(["cat", "dog"], ["a photo of a {}.", "a {}."])
    assert labels.prompts == ("a photo of a cat.", "a cat.", "a photo of a dog.", "a dog.")
    assert labels.prompt_class == (0, 0, 1, 1)
    with pytest.raises(LabelSetError, match=r"empty"):
        LabelSet.from_classes([])
    with pytest.raises(LabelSetError, match=r"template list is empty"):
        LabelSet.from_classes(["cat"], [])
    with pytest.raises(LabelSetError, match=r"must contain"):
        LabelSet.from_classes(["cat"], ["a photo"])
    assert load_templates(str(write(tmp_path, "a {}.\n\nthe {}.\n", "t.txt"))) == ["a {}.", "the {}."]


def test_subset_keeps_the_chosen_classes_with_all_their_prompts():
    labels = LabelSet.from_classes(["cat", "dog", "fox"], ["a {}.", "the {}!"])
    small = labels.subset([2, 0])
    assert small.classes == ("fox", "cat")
    assert small.prompts == ("a cat.", "the cat!", "a fox.", "the fox!")
    assert small.prompt_class == (1, 1, 0, 0)
