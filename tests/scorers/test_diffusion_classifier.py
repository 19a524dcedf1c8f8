import pytest
import torch

from dcbench.data.labels import LabelSet
from dcbench.diffusion.pruning import NoPruning, SequentialTest, StagedPruning
from dcbench.diffusion.samplers import EvenSampler, UniformSampler
from dcbench.reference import reference_eval_prob_adaptive
from dcbench.scorers.diffusion_classifier import DiffusionClassifier


def make(backbone, labels, pruning=None, sampler=None, **kwargs) -> DiffusionClassifier:
    scorer = DiffusionClassifier(backbone, sampler or EvenSampler(), pruning or NoPruning(8), **kwargs)
    scorer.prepare(labels)
    return scorer


def images_for(templates, classes, noise=0.0):
    g = torch.Generator().manual_seed(1)
    return templates[classes] + noise * torch.randn(templates[classes].shape, generator=g)


@pytest.mark.parametrize("pruning", [NoPruning(8), StagedPruning([2, 8], [3, 1]), StagedPruning([4, 8, 16], [4, 2, 1]),
                                     SequentialTest(alpha=0.05, round_size=2, max_samples=16)])
def test_planted_answer_is_predicted(planted, templates, labels, pruning):
    scorer = make(planted, labels, pruning)
    classes = [3, 0, 5, 1]
    records = scorer.score(images_for(templates, classes), [f"img{i}" for i in classes])
    assert [r["prediction"] for r in records] == classes
    for k, r in zip(classes, records, strict=True):
        assert r["errors"][k] == pytest.approx(0.0, abs=1e-8)
        assert r["pruned_at"][k] is None
        assert max(r["probs"]) == r["probs"][k]


@pytest.mark.parametrize("test", ["t", "wilcoxon"])
def test_sequential_test_never_prunes_the_true_class(planted, templates, labels, test):
    # Noisy images: the planted class is best in expectation but not at every sample, so tests run.
    classes = [k % 6 for k in range(24)]
    scorer = make(planted, labels, SequentialTest(alpha=0.01, round_size=2, max_samples=32, test=test))
    records = scorer.score(images_for(templates, classes, noise=0.3), [f"img{i}" for i in range(24)])
    for k, r in zip(classes, records, strict=True):
        assert r["pruned_at"][k] is None
        assert r["prediction"] == k
    if test == "wilcoxon":  # ...and it does prune (the planted model's errors defeat the t-test: see its docs)
        assert sum(r["nfe"] for r in records) < 24 * 6 * 32 / 2


def test_same_noise_and_timesteps_for_every_candidate(planted, templates, labels):
    scorer = make(planted, labels, NoPruning(5))
    scorer.score(images_for(templates, [2]), ["only"])
    x_t, t, cond = (torch.cat(parts) for parts in zip(*planted.calls, strict=True))
    assert len(t) == 6 * 5
    for timestep in t.unique():
        rows = t == timestep
        assert sorted(cond[rows].tolist()) == list(range(6))  # every class at this t ...
        assert torch.equal(x_t[rows], x_t[rows][:1].expand_as(x_t[rows]))  # ... on the identical x_t


def test_staged_records_nfe_and_pruning_stage(planted, templates, labels):
    scorer = make(planted, labels, StagedPruning([2, 8], [3, 1]))
    (r,) = scorer.score(images_for(templates, [4], noise=0.3), ["x"])
    # stage 1: 6 classes x 2 timesteps; stage 2: 3 survivors x 6 new timesteps
    assert r["nfe"] == 6 * 2 + 3 * 6
    assert sorted(s for s in r["pruned_at"] if s is not None) == [0, 0, 0, 1, 1]
    assert r["pruned_at"].count(None) == 1 and r["pruned_at"][r["prediction"]] is None


@pytest.mark.parametrize("schedule", [lambda: StagedPruning([2, 8], [3, 1]),
                                      lambda: SequentialTest(alpha=0.2, round_size=2, max_samples=12, test="wilcoxon")])
def test_results_depend_on_seed_and_id_only(planted, templates, labels, schedule):
    imgs = images_for(templates, [0, 1, 2, 3, 4, 5], noise=0.5)
    ids = [f"id{i}" for i in range(6)]
    together = make(planted, labels, schedule(), batch_size=500).score(imgs, ids)
    small_batches = make(planted, labels, schedule(), batch_size=7)
    alone = [small_batches.score(imgs[i : i + 1], [ids[i]])[0] for i in reversed(range(6))][::-1]
    for a, b in zip(together, alone, strict=True):
        assert a["prediction"] == b["prediction"] and a["pruned_at"] == b["pruned_at"]
        assert a["errors"] == pytest.approx(b["errors"], rel=1e-6)
    other_seed = make(planted, labels, schedule(), seed=1).score(imgs, ids)
    assert [r["errors"] for r in other_seed] != [r["errors"] for r in together]


def test_uniform_sampler_draws_per_image(planted, templates, labels):
    scorer = make(planted, labels, NoPruning(4), sampler=UniformSampler())
    scorer.score(images_for(templates, [0, 1]), ["a", "b"])
    t = torch.cat([c[1] for c in planted.calls])
    assert len(t.unique()) > 4  # the two images got different timesteps


def test_probabilities_are_softmax_of_negative_error_over_tau(planted, templates, labels):
    scorer = make(planted, labels, NoPruning(4), temperature=0.05)
    (r,) = scorer.score(images_for(templates, [1], noise=0.2), ["p"])
    expected = torch.softmax(-torch.tensor(r["errors"]) / 0.05, dim=0)
    assert r["probs"] == pytest.approx(expected.tolist(), rel=1e-5)


def test_several_prompts_per_class_take_the_best_prompt(planted, templates):
    # prompts 0..5 map to classes [0, 0, 1, 1, 2, 2]; the planted backbone conditions on the class
    labels = LabelSet(("a", "b", "c"), ("a1", "a2", "b1", "b2", "c1", "c2"), (0, 0, 1, 1, 2, 2))
    scorer = make(planted, labels, NoPruning(4))
    (r,) = scorer.score(images_for(templates, [2]), ["q"])
    assert r["prediction"] == 2 and len(r["errors"]) == 3 and len(r["prompt_errors"]) == 6
    assert r["errors"][2] == pytest.approx(min(r["prompt_errors"][4:6]))


def test_noise_file_reproduces_and_is_checked(planted, templates, labels, tmp_path):
    noise = torch.randn(8, 1, 4, 4, generator=torch.Generator().manual_seed(42))
    torch.save(noise, tmp_path / "noise.pt")
    scorer = make(planted, labels, NoPruning(8), noise_path=str(tmp_path / "noise.pt"))
    scorer.score(images_for(templates, [0]), ["a"])
    x_t, t, _ = planted.calls[0]
    a = planted.process.alphas_cumprod[t].view(-1, 1, 1, 1)
    used = noise[torch.arange(len(t)) // 6]  # queries run position by position, 6 classes each
    torch.testing.assert_close(x_t, a.sqrt() * templates[0] + (1 - a).sqrt() * used)
    too_small = make(planted, labels, NoPruning(8), n_trials=2, noise_path=str(tmp_path / "noise.pt"))
    with pytest.raises(ValueError, match=r"noise file holds"):
        too_small.score(images_for(templates, [0]), ["a"])


@pytest.mark.parametrize(("n_samples", "to_keep", "n_trials"), [([4, 20], [3, 1], 1), ([2, 5, 10], [4, 2, 1], 2)])
def test_matches_reference_number_for_number(planted, templates, labels, tmp_path, n_samples, to_keep, n_trials):
    noise = torch.randn(64, 1, 4, 4, generator=torch.Generator().manual_seed(42))
    torch.save(noise, tmp_path / "noise.pt")
    image = images_for(templates, [2], noise=0.6)
    ref_pred, ref_data = reference_eval_prob_adaptive(
        planted, image, torch.arange(6), planted.process.alphas_cumprod, n_samples, to_keep, noise, n_trials)
    scorer = make(planted, labels, StagedPruning(n_samples, to_keep), n_trials=n_trials,
                  noise_path=str(tmp_path / "noise.pt"))
    (r,) = scorer.score(image, ["ref"])
    assert r["prediction"] == ref_pred
    for prompt, errs in ref_data.items():
        assert r["errors"][prompt] == pytest.approx(errs.mean().item(), rel=1e-5)
    assert r["nfe"] == sum(len(e) for e in ref_data.values())


def test_a_stage_without_new_timesteps_still_prunes(planted, templates, labels):
    # n_samples [2, 2]: stage 2 picks the same positions as stage 1, so it only prunes
    scorer = make(planted, labels, StagedPruning([2, 2], [3, 1]))
    (r,) = scorer.score(images_for(templates, [5]), ["s"])
    assert r["prediction"] == 5 and r["nfe"] == 6 * 2
    assert sorted(s for s in r["pruned_at"] if s is not None) == [0, 0, 0, 1, 1]


def test_noise_file_in_safetensors(tmp_path):
    from safetensors.torch import save_file

    from dcbench.scorers.diffusion_classifier import load_noise

    noise = torch.randn(4, 1, 2, 2)
    save_file({"noise": noise}, tmp_path / "noise.safetensors")
    torch.testing.assert_close(load_noise(tmp_path / "noise.safetensors"), noise)
    save_file({"other": noise}, tmp_path / "bad.safetensors")
    with pytest.raises(TypeError, match="not a tensor of noise"):
        load_noise(tmp_path / "bad.safetensors")


def test_out_of_memory_halves_the_batch_and_changes_nothing(planted, templates, labels):
    imgs, ids = images_for(templates, [1, 4], noise=0.3), ["a", "b"]
    expected = make(planted, labels, batch_size=64).score(imgs, ids)
    forward = planted.forward

    def small_device(x_t, t, cond):  # a fake allocator: batches above 10 do not fit
        if len(x_t) > 10:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return forward(x_t, t, cond)

    planted.forward = small_device
    scorer = make(planted, labels, batch_size=64)
    with pytest.warns(UserWarning, match="batch_size lowered to 8"):
        records = scorer.score(imgs, ids)
    assert scorer.batch_size == 8
    for a, b in zip(records, expected, strict=True):
        assert a["prediction"] == b["prediction"] and a["errors"] == pytest.approx(b["errors"], rel=1e-6)
    planted.forward = lambda *args: (_ for _ in ()).throw(torch.OutOfMemoryError("no memory at all"))
    with pytest.raises(torch.OutOfMemoryError, match="batch_size 1"), pytest.warns(UserWarning):
        make(planted, labels, batch_size=4).score(imgs, ids)


def test_autocast_runs_the_denoiser_in_low_precision_and_noises_in_float32(planted, templates, labels):
    seen = []
    forward = planted.forward

    def spy(x_t, t, cond):
        seen.append((x_t.dtype, torch.is_autocast_enabled("cpu")))
        return forward(x_t, t, cond)

    planted.forward = spy
    records = make(planted, labels, precision="bf16").score(images_for(templates, [2]), ["x"])
    assert records[0]["prediction"] == 2
    assert seen and all(dtype == torch.float32 and autocast for dtype, autocast in seen)
    with pytest.raises(ValueError, match="precision"):
        make(planted, labels, precision="fp8")


def test_compile_wraps_the_backbone_once(planted, templates, labels, monkeypatch):
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda module: compiled.append(module) or module)
    scorer = make(planted, labels, compile=True)
    scorer.score(images_for(templates, [0, 3]), ["a", "b"])
    assert compiled == [planted]
    assert not any(k.startswith("_compiled") for k in scorer.state_dict())


def test_channels_last_converts_the_backbone_and_changes_nothing_but_rounding(tiny_unet_class_dir, tiny_info):
    from dcbench.registry import BACKBONES

    backbone = BACKBONES.build({"name": "unet-class", "pretrained": str(tiny_unet_class_dir)})
    labels = LabelSet.from_classes(list(tiny_info.classes))
    images = torch.rand(2, backbone.image_channels, backbone.image_size, backbone.image_size) * 2 - 1
    seen = []
    forward = backbone.forward
    backbone.forward = lambda x_t, t, cond: seen.append(x_t.is_contiguous(memory_format=torch.channels_last)) \
        or forward(x_t, t, cond)
    plain = make(backbone, labels, channels_last=False).score(images, ["a", "b"])
    assert seen and not any(seen)
    seen.clear()
    fast = make(backbone, labels, channels_last=True).score(images, ["a", "b"])
    assert seen and all(seen)
    convs = [m.weight for m in backbone.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    for p, f in zip(plain, fast, strict=True):
        assert f["errors"] == pytest.approx(p["errors"], rel=1e-4, abs=1e-6)


def test_vlb_objectives_score_a_learned_variance_model_and_sum_with_l2(tiny_info, tmp_path):
    from dcbench.registry import BACKBONES

    backbone = BACKBONES.build({"name": "unet-class", "pretrained": str(
        tiny_info.write_unet_class(tmp_path / "lv", learned_variance=True))})
    assert backbone.learned_variance
    labels = LabelSet.from_classes(list(tiny_info.classes))
    images = torch.rand(2, 3, 8, 8) * 2 - 1
    assert backbone(images, torch.tensor([5, 9]), torch.tensor([0, 1])).shape == images.shape  # eps only
    errors = {loss: torch.tensor([r["errors"] for r in make(backbone, labels, NoPruning(4), loss=loss)
                                  .score(images, ["a", "b"])]) for loss in ("l2", "vlb", "l2+vlb")}
    assert torch.allclose(errors["l2+vlb"], errors["l2"] + errors["vlb"], rtol=1e-5)
    assert not torch.allclose(errors["vlb"], errors["l2"])

    plain = BACKBONES.build({"name": "unet-class", "pretrained": str(tiny_info.write_unet_class(tmp_path / "eps"))})
    assert not plain.learned_variance
    with pytest.raises(ValueError, match="needs a backbone with learned variance"):
        make(plain, labels, loss="vlb")
    with pytest.raises(NotImplementedError, match="has no learned variance"):
        plain.forward_with_variance(images, torch.tensor([5, 9]), torch.tensor([0, 1]))
