"""Adapters with the paper's method options: saved and reloaded exactly, and trained one epoch end to end."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from ipt_ray.config import validate_config
from ipt_ray.model import ADAPTER_FILE, load_adapter
from adapters import TEXTS, save_perturbed_adapter, text_batch


@pytest.mark.parametrize("method", [
    {"strategy": "random_ipt", "injection": "prefix", "task_prompt_length": 2, "hard_prompt": "Human Activities"},
    {"strategy": "random_ipt", "injection": "input", "task_prompt_length": 3},
    {"strategy": "random_ipt", "injection": "prefix", "prefix_projection": "none", "hard_prompt": "Culture and the Arts",
     "task_prompt_length": 1},
    {"strategy": "prompt_tuning", "injection": "prefix", "prefix_projection": "none"},
    {"strategy": "encoder_ipt", "injection": "prefix", "prefix_projection": "none", "task_prompt_length": 2},
])
def test_adapter_round_trip_with_the_paper_options(bert, tiny_bert, tmp_path, method):
    config, adapter, _ = save_perturbed_adapter(bert, tiny_bert, tmp_path / "adapter",
                                                {"table_layout": "compact", "prompt_length": 3, **method})
    tensors = load_file(str(tmp_path / "adapter" / ADAPTER_FILE))
    if config.method.task_prompt_length:
        assert torch.equal(tensors["task_prompt.prompt"], adapter.task_prompt.prompt)
    assert not any("hard_ids" in name for name in tensors)  # rebuilt from the config and the (checked) tokenizer
    loaded_config, loaded, _, _ = load_adapter(tmp_path / "adapter", backbone=bert)
    assert loaded_config == config
    batch = text_batch(bert, TEXTS)
    with torch.no_grad():
        assert torch.equal(loaded(bert, batch), adapter(bert, batch))
    if config.method.hard_prompt:
        assert torch.equal(loaded.source.hard_ids, adapter.source.hard_ids) and len(loaded.source.hard_ids) > 0


def tiny_config(backbone_dir, **method):
    return validate_config({
        "task": {"name": "cb", "max_train_samples": 24, "max_eval_samples": 16, "max_length": 64},
        "backbone": {"name": str(backbone_dir)},
        "method": {"strategy": "random_ipt", "prompt_length": 4, "table_layout": "compact", **method},
        "train": {"epochs": 1, "batch_size": 8, "lr": 0.01, "seeds": [0, 1], "progress": False,
                  "execution": "batched"},
    })


@pytest.mark.parametrize("method,prompt_params", [
    ({"strategy": "prompt_tuning", "injection": "prefix", "prefix_projection": "none"}, lambda L, d: 4 * 2 * L * d),
    ({"injection": "prefix", "hard_prompt": "Human Activities", "task_prompt_length": 2}, None),
    ({"table_init": "backbone"}, None),
])
def test_one_epoch_of_training_with_the_paper_options(tiny_bert, bert, tmp_path, method, prompt_params):
    from ipt_ray.train import run_local

    reports = []
    result = run_local(tiny_config(tiny_bert, **method), run_dir=tmp_path / "run",
                       report_fn=lambda m, c: reports.append(m))
    assert result["epoch"] == 1 and 0.0 <= result["dev_accuracy_mean"] <= 1.0
    assert result["train_loss/seed_0"] == result["train_loss/seed_0"]  # not NaN
    _, adapter, _, _ = load_adapter(tmp_path / "run" / "seed_0", backbone=bert)
    trainable = sum(p.numel() for p in adapter.parameters() if p.requires_grad)
    assert reports[-1]["trainable_params"] == trainable
    if prompt_params is not None:  # Prefix Tuning without the MLP: the prompt and the head, nothing else
        head = bert.hidden_size * 3 + 3
        assert trainable == prompt_params(bert.num_layers, bert.hidden_size) + head
