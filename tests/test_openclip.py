"""Loading open_clip models from folders (local-dir:, embedded:) and reading their text towers."""

from __future__ import annotations

import pytest
import torch

from dcbench.backbones.base import ModelNotFoundError
from dcbench.openclip import create_from_config, load_open_clip, load_tokenizer, model_id, text_states
from dcbench.training.world import save_open_clip

CONFIG = {
    "embed_dim": 8,
    "vision_cfg": {"image_size": 8, "layers": 1, "width": 16, "patch_size": 4, "head_width": 8},
    "text_cfg": {"context_length": 12, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 2},
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    clip, _ = create_from_config(CONFIG)
    folder = tmp_path_factory.mktemp("clip") / "clip"
    save_open_clip(clip, CONFIG, folder)
    return clip, folder


def test_local_dir_round_trip(saved):
    clip, folder = saved
    loaded = load_open_clip(f"local-dir:{folder}")
    for (name, a), b in zip(clip.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert not any(p.requires_grad for p in loaded.parameters())
    tokens = load_tokenizer(f"local-dir:{folder}")(["a red circle"])
    assert tokens.shape == (1, 12)  # the context length of the saved config
    assert list(loaded.visual.image_mean) == list(clip.visual.image_mean)


def test_text_states_are_the_final_normed_token_states(saved):
    clip, _ = saved
    tokens = load_tokenizer("ViT-B-32")(["a red circle left of a blue square"])[:, :12]
    states = text_states(clip, tokens)
    x = clip.token_embedding(tokens) + clip.positional_embedding
    x = clip.ln_final(clip.transformer(x, attn_mask=clip.attn_mask))
    assert torch.allclose(states, x, atol=1e-5)
    penultimate = text_states(clip, tokens, layer=-2)
    assert penultimate.shape == states.shape and not torch.allclose(penultimate, states)


def test_folder_errors_name_the_problem(tmp_path):
    with pytest.raises(ModelNotFoundError, match=r"open_clip_config\.json"):
        load_open_clip(f"local-dir:{tmp_path}")
    with pytest.raises(FileNotFoundError, match="no embedded model 'no-such-world/clip'"):
        model_id("embedded:no-such-world/clip")
    assert model_id("RN50") == "RN50"
