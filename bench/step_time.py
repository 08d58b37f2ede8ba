"""Training-step time (forward + backward + optimizer) of every method, as a ratio to Prompt Tuning.

MiniLM backbone, batch 16 x 128 tokens, k=16, one seed, CPU. Methods are timed round-robin (one
step of each per round) so that drift in machine load hits all of them alike; medians over rounds.
The same work in PEFT (PromptTuningConfig, PrefixTuningConfig with its MLP projection) runs in the
same rounds when `peft` is installed.

Targets: Random IPT <= 1.05, Encoder IPT <= 1.15 (x Prompt Tuning); Prefix + IPT <= 1.10 x Prefix
Tuning; ours / PEFT <= 1.00 for both.
Usage: python -m bench.step_time [--rounds 20] [--batch 16] [--length 128] [--out bench/results/step_time.md]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
import torch.nn.functional as F

from ipt_ray.backbone import load_backbone, resolve_name
from ipt_ray.config import BackboneConfig, MethodConfig
from ipt_ray.model import SeedGroup, build_adapter, build_context, count_trainable
from ipt_ray.batches import PromptedBatch
from ipt_ray.train import seed_optimizer
from bench._methods import bench_methods
from bench._results import write_results

ADAMW_DEFAULT_DECAY = 0.01  # torch's AdamW default, which the figures on file were measured with

K, PREFIX_HIDDEN = 16, 128

METHODS: dict[str, dict] = bench_methods()
TARGETS = {"Random IPT": ("Prompt Tuning", 1.05), "Pretrained IPT": ("Prompt Tuning", 1.05),
           "Encoder IPT": ("Prompt Tuning", 1.15), "Prefix + ": ("Prefix Tuning", 1.10)}


def ratios(times: dict[str, list[float]]) -> list[tuple[str, float, str, float, float | None]]:
    """Per method: (name, median step s, the method it is compared with, ratio, target or None).

    Our methods are divided by their base; a PEFT row gives ours / PEFT (target 1.00).
    """
    med = {name: statistics.median(v) for name, v in times.items()}
    rows = []
    for name, value in med.items():
        if name.startswith("PEFT"):
            base = "Prompt Tuning" if "Prompt" in name else "Prefix Tuning"
            rows.append((name, value, base, med[base] / value, 1.0))
            continue
        base, target = next(((b, t) for key, (b, t) in TARGETS.items() if name.startswith(key)), ("Prompt Tuning", None))
        rows.append((name, value, base, value / med[base], target))
    return rows


def make_batch(vocab: int, cls_id: int, sep_id: int, batch: int = 16, length: int = 128, seed: int = 0) -> PromptedBatch:
    """Random content tokens between the special ones, no padding, random binary labels."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(min(1000, vocab // 2), vocab, (batch, length), generator=g)
    ids[:, 0], ids[:, -1] = cls_id, sep_id
    content = torch.ones(batch, length, dtype=torch.long)
    content[:, 0] = content[:, -1] = 0
    return PromptedBatch(input_ids=ids, attention_mask=torch.ones(batch, length, dtype=torch.long),
                         content_mask=content, token_type_ids=torch.zeros(batch, length, dtype=torch.long),
                         labels=torch.randint(0, 2, (batch,), generator=g))


def round_robin(steps: dict[str, Callable[[], None]], rounds: int, warmup: int,
                sync: Callable[[], None] | None = None) -> dict[str, list[float]]:
    """Seconds per call of each step: ``warmup`` untimed calls each, then one call of every step per round,
    so that drift in machine load hits all of them alike. ``sync`` (e.g. ``torch.cuda.synchronize``) runs
    around every timed call."""
    for step in steps.values():  # allocator, autograd graphs, thread pools, kernels
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            if sync:
                sync()
            t0 = time.perf_counter()
            step()
            if sync:
                sync()
            times[name].append(time.perf_counter() - t0)
    return times


def ours(backbone, batch: PromptedBatch, method: dict) -> tuple[Callable[[], None], int]:
    cfg = MethodConfig(prompt_length=K, prefix_hidden=PREFIX_HIDDEN, head_dropout=0.0, **method)
    ctx = build_context(cfg, backbone, 2, seen_token_ids=batch.input_ids.flatten())
    group = SeedGroup(backbone, [build_adapter(ctx, backbone, 0)], [0]).train()
    opt = seed_optimizer(group.adapters[0], lr=1e-3, weight_decay=ADAMW_DEFAULT_DECAY)  # as ipt_ray.train does

    def step() -> None:
        loss = F.cross_entropy(group([batch])[0], batch.labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step, count_trainable(group)


def peft_steps(path: str, batch: PromptedBatch) -> dict[str, tuple[Callable[[], None], int]]:
    try:
        from peft import PrefixTuningConfig, PromptTuningConfig, TaskType, get_peft_model
    except ImportError:
        return {}
    from transformers import AutoModelForSequenceClassification

    configs = {
        "PEFT Prompt Tuning": PromptTuningConfig(task_type=TaskType.SEQ_CLS, num_virtual_tokens=K),
        "PEFT Prefix Tuning": PrefixTuningConfig(task_type=TaskType.SEQ_CLS, num_virtual_tokens=K,
                                                 prefix_projection=True, encoder_hidden_size=PREFIX_HIDDEN),
    }
    out = {}
    for name, config in configs.items():
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2, classifier_dropout=0.0,
                                                                   hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        model = get_peft_model(model, config)
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-3, fused=True)  # the same optimizer for both sides

        def step(model=model, opt=opt) -> None:
            out_ = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                         token_type_ids=batch.token_type_ids, labels=batch.labels)
            out_.loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        out[name] = (step, sum(p.numel() for p in params))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--batch", type=int, default=16, help="the figures on file use 16 x 128")
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--out", default="bench/results/step_time.md")
    args = parser.parse_args()
    backbone = load_backbone(BackboneConfig(name="minilm-l6"))
    tok = backbone.tokenizer
    batch = make_batch(backbone.vocab_size, tok.cls_token_id, tok.sep_token_id, args.batch, args.length)
    cases = {name: ours(backbone, batch, m) for name, m in METHODS.items()}
    cases.update(peft_steps(resolve_name("minilm-l6"), batch))
    times = round_robin({name: step for name, (step, _) in cases.items()}, args.rounds, warmup=2)
    lines = [f"MiniLM-L6, batch {args.batch} x {args.length} tokens, k={K}, torch threads {torch.get_num_threads()}, "
             f"median of {args.rounds} round-robin steps.", "",
             "| method | trainable params | step (ms) | ratio | vs | target |", "|---|---|---|---|---|---|"]
    for name, step_s, base_name, ratio, target in ratios(times):
        shown = f"ours/PEFT = {ratio:.3f}" if name.startswith("PEFT") else f"{ratio:.3f}"
        verdict = "" if target is None else f"<= {target:.2f} {'ok' if ratio <= target else 'MISSED'}"
        lines.append(f"| {name} | {cases[name][1]:,} | {step_s * 1000:.0f} | {shown} | {base_name} | {verdict} |")
    write_results(args.out, lines, times)


if __name__ == "__main__":
    main()
