"""The batched S-seed training step / the 1-seed step: what a trial's seeds cost on a GPU.

A trial trains its seeds together; with ``train.execution: batched`` (the GPU default) their
sub-batches go through the frozen backbone in one pass. This times ``ipt_ray.train.train_step`` (the
loop's own step: forward, summed backward, per-seed clip and AdamW) for S seeds batched against one
seed, round-robin, with CUDA synchronised around every step. Target on a GPU (roberta-large, bf16,
5 seeds): <= 2.0.

Offline machines have no roberta-large weights; ``--random-init`` builds the same architecture from
its configuration (step time does not depend on the weights' values).

``--profile`` adds, per step, the time the GPU spent in kernels (torch.profiler, summed over kernels):
a step whose wall time is well above its kernel time waits on the CPU that launches the kernels, not on
the GPU.

Usage: python -m bench.seed_step [--backbone roberta-large] [--random-init] [--seeds 5] [--rounds 20]
                                 [--profile] [--out bench/results/seed_step.md]
"""

from __future__ import annotations

import argparse
import statistics
from types import SimpleNamespace
from typing import Callable

import torch

from ipt_ray.backbone import Backbone, load_backbone
from ipt_ray.config import BackboneConfig, MethodConfig
from ipt_ray.model import SeedGroup, build_adapter, build_context
from ipt_ray.batches import PromptedBatch
from ipt_ray.train import seed_optimizer, train_step
from bench._methods import bench_methods
from bench._results import write_results
from bench.step_time import ADAMW_DEFAULT_DECAY, make_batch, round_robin

METHODS: dict[str, dict] = bench_methods(defaults_only=True)
TARGET = 2.0

# facebook/roberta-large's config.json, for --random-init where the hub cannot be reached
ROBERTA_LARGE = dict(vocab_size=50265, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                     intermediate_size=4096, max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5,
                     pad_token_id=1, bos_token_id=0, eos_token_id=2)


def random_backbone(name: str) -> Backbone:
    """The architecture of ``name`` with random weights and a stand-in tokenizer (pad and mask ids only)."""
    from transformers import AutoConfig, AutoModel, RobertaConfig

    if name == "roberta-large":
        config = RobertaConfig(**ROBERTA_LARGE)
    else:
        from ipt_ray.backbone import resolve_name

        config = AutoConfig.from_pretrained(resolve_name(name))
    encoder = AutoModel.from_config(config, add_pooling_layer=False)
    tokenizer = SimpleNamespace(pad_token_id=config.pad_token_id or 0, mask_token_id=None,
                                cls_token_id=config.bos_token_id or 0, sep_token_id=config.eos_token_id or 2)
    return Backbone(name=f"{name} (random init)", encoder=encoder, tokenizer=tokenizer).freeze()


def seed_group_step(backbone: Backbone, method: dict, seeds: int, k: int, batches: list[PromptedBatch],
                    autocast: bool) -> Callable[[], None]:
    cfg = MethodConfig(prompt_length=k, **method)
    seen = torch.cat([b.input_ids.flatten().cpu() for b in batches])
    ctx = build_context(cfg, backbone, 2, seen_token_ids=seen)
    adapters = [build_adapter(ctx, backbone, s) for s in range(seeds)]
    device = batches[0].input_ids.device
    group = SeedGroup(backbone, adapters, list(range(seeds))).to(device).train()
    optimizers = [seed_optimizer(a, lr=1e-3, weight_decay=ADAMW_DEFAULT_DECAY) for a in adapters]
    schedulers = [torch.optim.lr_scheduler.ConstantLR(o, factor=1.0) for o in optimizers]  # the loop steps one

    def step() -> None:
        train_step(group, adapters, optimizers, schedulers, batches[:seeds], batched=True, autocast=autocast,
                   max_grad_norm=1.0)

    return step


def kernel_ms(step: Callable[[], None], calls: int = 5) -> float:
    """Milliseconds of GPU kernel time per call of ``step`` (summed over kernels; overlap is rare here)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            step()
        torch.cuda.synchronize()
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    return sum(e.time_range.elapsed_us() for e in kernels) / 1000 / calls


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backbone", default="roberta-large")
    parser.add_argument("--random-init", action="store_true", help="the backbone's architecture, random weights")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16, help="per seed")
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--profile", action="store_true", help="also the GPU kernel time per step (CUDA only)")
    parser.add_argument("--out", default="bench/results/seed_step.md")
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    autocast = device.type == "cuda"  # bf16 autocast, as the loop does on CUDA (train.precision auto)
    backbone = random_backbone(args.backbone) if args.random_init else load_backbone(BackboneConfig(name=args.backbone))
    backbone.to(device)
    tok = backbone.tokenizer
    batches = [make_batch(backbone.vocab_size, tok.cls_token_id, tok.sep_token_id, args.batch, args.length,
                          seed=s).to(device) for s in range(args.seeds)]
    cases: dict[str, Callable[[], None]] = {}
    for name in args.methods:
        cases[f"{name}, 1 seed"] = seed_group_step(backbone, METHODS[name], 1, args.k, batches, autocast)
        cases[f"{name}, {args.seeds} seeds"] = seed_group_step(backbone, METHODS[name], args.seeds, args.k, batches,
                                                               autocast)

    times = round_robin(cases, args.rounds, warmup=3, sync=torch.cuda.synchronize if device.type == "cuda" else None)
    med = {name: statistics.median(v) for name, v in times.items()}
    profiled = args.profile and device.type == "cuda"
    kernels = {name: kernel_ms(step) for name, step in cases.items()} if profiled else {}
    where = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    lines = [f"{backbone.name} on {where}, {'bf16 autocast' if autocast else 'fp32'}, {args.batch} x {args.length} "
             f"tokens per seed, k={args.k}, batched execution, median of {args.rounds} round-robin steps.", "",
             f"| method | 1 seed (ms) | {args.seeds} seeds (ms) | ratio | target |"
             + (f" GPU kernels, 1 / {args.seeds} seeds (ms) |" if profiled else ""), "|---|---|---|---|---|" + ("---|" if profiled else "")]
    for name in args.methods:
        one, many = med[f"{name}, 1 seed"], med[f"{name}, {args.seeds} seeds"]
        ratio = many / one
        verdict = f"<= {TARGET:.1f} {'ok' if ratio <= TARGET else 'MISSED'}" if device.type == "cuda" else "GPU only"
        busy = (f" {kernels[f'{name}, 1 seed']:.1f} / {kernels[f'{name}, {args.seeds} seeds']:.1f} |" if profiled else "")
        lines.append(f"| {name} | {one * 1000:.1f} | {many * 1000:.1f} | {ratio:.2f} | {verdict} |{busy}")
    write_results(args.out, lines, {"device": where, "seeds": args.seeds, "times": times, "kernel_ms": kernels})


if __name__ == "__main__":
    main()
