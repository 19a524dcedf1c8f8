"""The reference implementation's evaluation loop (official repo, ``eval_prob_adaptive``), transcribed.

Kept as close to the original as possible (GPU and fp16 specifics removed) for two uses: tests check
dcbench's Diffusion Classifier against it number for number, and ``dcbench bench`` times it against
dcbench at an identical schedule. It scores one image at a time, prompt by prompt, in batches of 32.
Not for use otherwise: ``DiffusionClassifier`` does the same work, batched across classes and images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["reference_eval_prob_adaptive"]


def reference_eval_prob_adaptive(unet: Callable[[Tensor, Tensor, Tensor], Tensor], latent: Tensor, text_embeds: Tensor,
                                 alphas_cumprod: Tensor, n_samples: Sequence[int], to_keep: Sequence[int],
                                 all_noise: Tensor, n_trials: int = 1, batch_size: int = 32,
                                 loss: str = "l2") -> tuple[int, dict[int, Tensor]]:
    """The winning prompt index and every prompt's errors, exactly as the reference computes them.

    ``unet(x_t, t, embeds)`` must return the predicted noise; ``latent`` is one encoded image (1, C, h, w).
    """
    device = latent.device
    T = len(alphas_cumprod)
    max_n_samples = max(n_samples)
    data: dict[int, Tensor] = {}
    t_evaluated: set[int] = set()
    remaining_prmpt_idxs = list(range(len(text_embeds)))
    start = T // max_n_samples // 2
    t_to_eval = list(range(start, T, T // max_n_samples))[:max_n_samples]
    for n_s, n_to_keep in zip(n_samples, to_keep, strict=True):
        ts, noise_idxs, text_embed_idxs = [], [], []
        curr_t_to_eval = t_to_eval[len(t_to_eval) // n_s // 2 :: len(t_to_eval) // n_s][:n_s]
        curr_t_to_eval = [t for t in curr_t_to_eval if t not in t_evaluated]
        for prompt_i in remaining_prmpt_idxs:
            for t_idx, t in enumerate(curr_t_to_eval, start=len(t_evaluated)):
                ts.extend([t] * n_trials)
                noise_idxs.extend(list(range(n_trials * t_idx, n_trials * (t_idx + 1))))
                text_embed_idxs.extend([prompt_i] * n_trials)
        t_evaluated.update(curr_t_to_eval)
        pred_errors = torch.zeros(len(ts))
        idx = 0
        for _ in range(len(ts) // batch_size + int(len(ts) % batch_size != 0)):
            batch_ts = torch.tensor(ts[idx : idx + batch_size], device=device)
            noise = all_noise[noise_idxs[idx : idx + batch_size]].to(device)
            a = alphas_cumprod.to(device)[batch_ts]
            noised = latent * (a**0.5).view(-1, 1, 1, 1) + noise * ((1 - a) ** 0.5).view(-1, 1, 1, 1)
            pred = unet(noised, batch_ts, text_embeds[text_embed_idxs[idx : idx + batch_size]])
            fn = {"l2": F.mse_loss, "l1": F.l1_loss, "huber": F.huber_loss}[loss]
            pred_errors[idx : idx + len(batch_ts)] = fn(noise, pred, reduction="none").mean(dim=(1, 2, 3)).cpu()
            idx += len(batch_ts)
        for prompt_i in remaining_prmpt_idxs:
            mask = torch.tensor(text_embed_idxs) == prompt_i
            errs = pred_errors[mask]
            data[prompt_i] = torch.cat([data[prompt_i], errs]) if prompt_i in data else errs
        errors = [-data[prompt_i].mean() for prompt_i in remaining_prmpt_idxs]
        best_idxs = torch.topk(torch.tensor(errors), k=n_to_keep, dim=0).indices.tolist()
        remaining_prmpt_idxs = [remaining_prmpt_idxs[i] for i in best_idxs]
    return remaining_prmpt_idxs[0], data
