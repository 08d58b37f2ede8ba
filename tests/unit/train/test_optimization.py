"""The optimizer's options: learning rates per parameter group, warm-up steps, gradient accumulation."""

from __future__ import annotations

import contextlib
import copy
import math

import pytest
import torch
from safetensors.torch import load_file

from ipt_ray.config import ConfigError, MethodConfig, validate_config
from ipt_ray.model import SeedGroup, build_adapter, build_context
from ipt_ray.train import (accumulated_step, accumulation_groups, backbone_collator, linear_schedules,
                           load_trainer_state, parameter_groups, prepared_inputs, run_local, seed_optimizer)
from ipt_ray.train.checkpoints import regrouped
from resume_runs import uninterrupted_and_resumed


def config(backbone_dir, train=None, **method):
    """Prompt tuning over the tiny BERT with every dropout off: a deterministic run."""
    return validate_config({
        "task": {"name": "cb", "max_train_samples": 20, "max_eval_samples": 12, "max_length": 48},
        "backbone": {"name": str(backbone_dir)},
        "method": {"strategy": "prompt_tuning", "prompt_length": 4, "head_dropout": 0.0, **method},
        "train": {"epochs": 2, "batch_size": 6, "lr": 0.01, "seeds": [0], "progress": False, **(train or {})},
    })


def adapter_of(bert, seed=0, **method):
    ctx = build_context(MethodConfig(**{"strategy": "prompt_tuning", **method}), bert, 3, ["yes", "no", "maybe"])
    return build_adapter(ctx, bert, seed)


# --- configuration -----------------------------------------------------------------------------------------

def test_defaults_keep_todays_behaviour(tiny_bert):
    train = config(tiny_bert).train
    assert (train.head_lr, train.warmup_steps, train.grad_accumulation) == (None, None, 1)


@pytest.mark.parametrize("key, value", [("train.grad_accumulation", 0), ("train.warmup_steps", -1),
                                        ("train.head_lr", 0.0), ("train.head_lr", 11.0)])
def test_out_of_range_values_name_their_field(tiny_bert, key, value):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        config(tiny_bert).with_overrides({key: value})


# --- learning rates per parameter group --------------------------------------------------------------------

def test_prompt_and_injection_train_at_lr_and_the_head_at_head_lr(bert):
    adapter = adapter_of(bert, strategy="prompt_tuning", injection="prefix", prompt_length=4)
    groups = parameter_groups(adapter, lr=0.01, head_lr=0.1)
    assert [(g["name"], g["lr"]) for g in groups] == [("prompt", 0.01), ("head", 0.1)]
    by_id = {id(p): g["name"] for g in groups for p in g["params"]}
    trainable = [p for p in adapter.parameters() if p.requires_grad]
    assert len(by_id) == len(trainable) == sum(len(g["params"]) for g in groups)  # each exactly once
    assert all(by_id[id(p)] == "head" for p in adapter.head.parameters())
    assert all(by_id[id(p)] == "prompt" for m in (adapter.source, adapter.injection) for p in m.parameters())
    assert any(True for _ in adapter.injection.parameters())  # the prefix MLP is in the prompt group
    # the flat order is the one-group order (old checkpoints map onto the groups)
    assert [id(p) for g in groups for p in g["params"]] == [id(p) for p in trainable]


def test_fine_tuning_trains_the_backbone_at_lr_and_the_head_at_head_lr(bert):
    adapter = adapter_of(bert, strategy="fine_tuning")
    groups = parameter_groups(adapter, lr=2e-5, head_lr=1e-3)
    assert [(g["name"], g["lr"]) for g in groups] == [("head", 1e-3), ("backbone", 2e-5)]
    assert parameter_groups(adapter, lr=2e-5)[0]["lr"] == 2e-5  # head_lr None: train.lr


def test_one_step_moves_each_group_by_its_own_rate(bert):
    """Adam's first step under a constant gradient moves every weight by its group's rate (no decay)."""
    adapter = adapter_of(bert, strategy="prompt_tuning", prompt_length=4)
    opt = seed_optimizer(adapter, lr=0.01, weight_decay=0.0, head_lr=0.1)
    trainable = {n: p for n, p in adapter.named_parameters() if p.requires_grad}
    before = {n: p.detach().clone() for n, p in trainable.items()}
    for p in trainable.values():
        p.grad = torch.ones_like(p)
    opt.step()
    for name, p in trainable.items():
        expected = 0.1 if name.startswith("head.") else 0.01
        torch.testing.assert_close(before[name] - p.detach(), torch.full_like(p, expected), rtol=1e-5, atol=1e-7)


def two_group_optimizer(lr=0.01, head_lr=0.1):
    params = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(3))]
    return torch.optim.AdamW([{"name": "prompt", "params": params[:1], "lr": lr},
                              {"name": "head", "params": params[1:], "lr": head_lr}], lr=lr)


def lrs_over(opt, schedule, steps):
    out = []
    for _ in range(steps):
        out.append([g["lr"] for g in opt.param_groups])
        opt.step()  # no gradients: moves nothing, keeps the scheduler's order check quiet
        schedule.step()
    return out


# --- warm-up -----------------------------------------------------------------------------------------------

def test_warmup_steps_rise_linearly_then_decay_in_every_group(tiny_bert):
    train = config(tiny_bert, {"warmup_steps": 10, "warmup_ratio": 0.5}).train  # steps win over the ratio
    opt = two_group_optimizer()
    lrs = lrs_over(opt, linear_schedules([opt], train, total_steps=100)[0], 101)
    for step, factor in [(0, 0.0), (5, 0.5), (10, 1.0), (55, 0.5), (100, 0.0)]:
        assert lrs[step] == pytest.approx([0.01 * factor, 0.1 * factor]), step


def test_without_warmup_steps_the_ratio_applies(tiny_bert):
    opt = two_group_optimizer()
    lrs = lrs_over(opt, linear_schedules([opt], config(tiny_bert, {"warmup_ratio": 0.2}).train, 50)[0], 11)
    assert lrs[5][0] == pytest.approx(0.005) and lrs[10][0] == pytest.approx(0.01)  # 20% of 50 = 10 steps
    opt = two_group_optimizer()
    assert lrs_over(opt, linear_schedules([opt], config(tiny_bert, {"warmup_steps": 0}).train, 50)[0], 1)[0] == \
        pytest.approx([0.01, 0.1])  # 0 steps: full rate from the first step


def test_warmup_longer_than_the_run_is_capped_with_a_warning(tiny_bert):
    opt = two_group_optimizer()
    with pytest.warns(UserWarning, match="train.warmup_steps 500 exceeds the run's 20 optimizer steps"):
        schedule = linear_schedules([opt], config(tiny_bert, {"warmup_steps": 500}).train, 20)[0]
    assert lrs_over(opt, schedule, 11)[10] == pytest.approx([0.005, 0.05])  # half of the 20-step warm-up


# --- gradient accumulation ---------------------------------------------------------------------------------

def test_accumulation_groups_keep_the_incomplete_last_group():
    assert list(accumulation_groups(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(accumulation_groups(range(6), 2)) == [[0, 1], [2, 3], [4, 5]]
    assert [len(g) for g in accumulation_groups(range(5), 1)] == [1] * 5


@pytest.mark.parametrize("sizes", [[4, 4, 4], [5, 5, 2]])
def test_micro_batches_step_like_one_batch_of_all_of_them(tiny_bert, sizes):
    """Plain SGD at rate 1: the parameter change is the gradient, which must be one 12-example batch's."""
    inputs = prepared_inputs(config(tiny_bert))
    collate, rows = backbone_collator(inputs.backbone), inputs.rows["train"][:12]
    adapter = adapter_of(inputs.backbone, strategy="prompt_tuning", prompt_length=4, head_dropout=0.0)
    runs = {}
    for name, chunks in [("one", [12]), ("accumulated", sizes)]:
        model = SeedGroup(inputs.backbone, [copy.deepcopy(adapter)], [0]).train()
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
        const = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
        starts = [sum(chunks[:i]) for i in range(len(chunks))]
        micro = [[collate(rows[s:s + n])] for s, n in zip(starts, chunks)]
        losses = accumulated_step(model, model.adapters, [opt], [const], micro, False, False, max_grad_norm=1e9)
        runs[name] = (model.adapters[0].state_dict(), losses)
    for key, value in runs["one"][0].items():
        torch.testing.assert_close(runs["accumulated"][0][key], value, rtol=1e-4, atol=1e-6)
    assert runs["accumulated"][1].shape == (1,)  # the seeds' summed micro-batch losses


class RecordingDDP:
    """Stands in for DistributedDataParallel: records whether each forward ran inside ``no_sync``."""

    def __init__(self, module):
        self.module, self.syncing, self.forwards = module, True, []

    @contextlib.contextmanager
    def no_sync(self):
        self.syncing = False
        try:
            yield
        finally:
            self.syncing = True

    def __call__(self, *args, **kwargs):
        self.forwards.append(self.syncing)
        return self.module(*args, **kwargs)


def test_only_the_last_micro_batch_all_reduces(tiny_bert):
    inputs = prepared_inputs(config(tiny_bert))
    collate, rows = backbone_collator(inputs.backbone), inputs.rows["train"]
    group = SeedGroup(inputs.backbone, [adapter_of(inputs.backbone, prompt_length=4)], [0])
    opt = seed_optimizer(group.adapters[0], 0.01, 0.0)
    model = RecordingDDP(group)
    micro = [[collate(rows[i:i + 3])] for i in (0, 3, 6)]
    accumulated_step(model, group.adapters, [opt], linear_schedules([opt], config(tiny_bert).train, 10), micro,
                     False, False, 1.0)
    assert model.forwards == [False, False, True]


def run_state(run_dir):
    return load_file(run_dir / "seed_0" / "adapter_model.safetensors")


@pytest.mark.parametrize("execution", ["sequential", "batched"])
def test_a_run_with_accumulation_equals_one_with_the_combined_batch(tiny_bert, tmp_path, execution):
    """20 examples: batches of 6 (6, 6, 6, 2) against micro-batches of 3 in pairs ((3, 3) x 3, (2)), two seeds."""
    train = {"execution": execution, "warmup_steps": 2, "head_lr": 0.05, "max_grad_norm": 1e9}
    whole = run_local(config(tiny_bert, {**train, "batch_size": 6}), tmp_path / "whole", seeds=[0, 1])
    micro = run_local(config(tiny_bert, {**train, "batch_size": 3, "grad_accumulation": 2}), tmp_path / "micro",
                      seeds=[0, 1])
    for seed in (0, 1):
        assert micro[f"dev_loss/seed_{seed}"] == pytest.approx(whole[f"dev_loss/seed_{seed}"], abs=1e-4)
    for key, value in run_state(tmp_path / "whole").items():
        torch.testing.assert_close(run_state(tmp_path / "micro")[key], value, rtol=1e-3, atol=1e-5)


def test_an_uneven_epoch_steps_ceil_n_over_n_times_and_reports_each_groups_rate(tiny_bert, tmp_path):
    cfg = config(tiny_bert, {"batch_size": 3, "grad_accumulation": 3, "head_lr": 0.04, "warmup_steps": 0})
    micro_batches = math.ceil(len(prepared_inputs(cfg).rows["train"]) / 3)
    assert micro_batches % 3 != 0  # 20 examples: 7 micro-batches, groups of 3, 3, 1
    reports = []
    run_local(cfg, tmp_path / "r", report_fn=lambda m, c: reports.append(m))
    state = load_trainer_state(tmp_path / "r" / "checkpoint")
    steps = 2 * math.ceil(micro_batches / 3)
    assert state["schedulers"][0]["last_epoch"] == steps
    assert all(int(s["step"]) == steps for s in state["optimizers"][0]["state"].values())
    assert [g["name"] for g in state["optimizers"][0]["param_groups"]] == ["prompt", "head"]
    for report, step in zip(reports, (2, 5)):  # the rate of each epoch's last step, decaying from the start
        factor = (steps - step) / steps
        assert report["lr_prompt/seed_0"] == pytest.approx(0.01 * factor)
        assert report["lr_head/seed_0"] == pytest.approx(0.04 * factor)


def test_resume_with_accumulation_and_two_rates_equals_an_uninterrupted_run(tiny_bert, tmp_path):
    cfg = config(tiny_bert, {"batch_size": 3, "grad_accumulation": 3, "head_lr": 0.03, "warmup_steps": 2,
                             "epochs": 3}, head_dropout=0.2)
    full, resumed = uninterrupted_and_resumed(cfg, tmp_path)
    for key in ("dev_loss_mean", "train_loss_mean", "lr_head_mean"):
        assert resumed[key] == pytest.approx(full[key], abs=1e-6)


def test_a_one_group_checkpoint_resumes_into_the_groups(bert):
    """Checkpoints from before the parameter groups: one group over the same parameters in the same order."""
    adapter = adapter_of(bert, prompt_length=4)
    params = [p for p in adapter.parameters() if p.requires_grad]
    old = torch.optim.AdamW(params, lr=0.01)
    old_schedule = torch.optim.lr_scheduler.LambdaLR(old, lambda step: 0.5)
    for p in params:
        p.grad = torch.ones_like(p)
    old.step()
    old_schedule.step()
    new = seed_optimizer(adapter, 0.01, 0.0)
    new_schedule = linear_schedules([new], validate_config({}).train, 10)[0]
    saved, schedule = regrouped(new, old.state_dict(), old_schedule.state_dict())
    new.load_state_dict(saved)
    new_schedule.load_state_dict(schedule)
    assert [g["name"] for g in new.param_groups] == ["prompt", "head"]
    assert all(g["lr"] == pytest.approx(0.005) for g in new.param_groups)
    assert new_schedule.base_lrs == [0.01, 0.01]
    for p in params:
        torch.testing.assert_close(new.state[p]["exp_avg"], old.state[p]["exp_avg"])
    with pytest.raises(ValueError, match="parameter group"):
        regrouped(new, {"param_groups": [{"params": [0]}], "state": {}}, schedule)
