"""PromptedModel pieces: one trainable Adapter per seed, and a SeedGroup sharing one frozen backbone.

An Adapter is source + injection + head (plus the whole backbone for fine-tuning). Its state dict is
the trainable state: that is what checkpoints and saved adapters hold.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ipt_ray import prompts as _prompts  # noqa: F401  (registers the built-in pieces)
from ipt_ray.backbone import ADAPTER, Backbone, check_identity, load_artefact, load_backbone, save_artefact
from ipt_ray.config import ExperimentConfig, MethodConfig, as_config
from ipt_ray.batches import PromptedBatch, text_token_ids
from ipt_ray.data import task_spec
from ipt_ray.prompts.base import HEADS, INJECTIONS, SOURCES, BuildContext, lookup
from ipt_ray.prompts.sources.soft_prompt import build_task_prompt

ADAPTER_FORMAT = ADAPTER.format
ADAPTER_FILE = ADAPTER.weights  # adapter_model.safetensors
ADAPTER_CONFIG_FILE = ADAPTER.config  # adapter_config.json
CONTEXT_PREFIX = "context."  # build-context tensors in the safetensors file (no state_dict key starts so)


class Adapter(nn.Module):
    """The trainable part of one seed. ``forward(backbone, batch) -> logits [B, C]``.

    ``task_prompt`` (``method.task_prompt_length`` > 0, instance-wise sources only) is a learned
    task-level prompt ``[t, w]`` placed before the source's prompts: the prompt is ``[task ; source]``,
    ``[B, t + k, w]``, its mask ``[ones ; source mask]``.
    """

    def __init__(self, source: nn.Module | None, injection: nn.Module, head: nn.Module, encoder: nn.Module | None = None,
                 task_prompt: nn.Module | None = None):
        super().__init__()
        self.source = source
        self.injection = injection
        self.head = head
        self.encoder = encoder  # fine-tuning only: this seed's own, unfrozen copy of the backbone
        self.task_prompt = task_prompt

    @property
    def prompt_length(self) -> int:
        """Prompt positions this adapter puts before the input (task prompt + source)."""
        return sum(p.length for p in (self.task_prompt, self.source) if p is not None)

    def prompt_state(self, batch: PromptedBatch):
        parts = [p(batch) for p in (self.task_prompt, self.source) if p is not None and p.length]
        if not parts:
            return None
        prompts, mask = parts[0] if len(parts) == 1 else (torch.cat(t, dim=1) for t in zip(*parts))
        return self.injection.prepare(prompts, mask)

    def forward(self, backbone: Backbone, batch: PromptedBatch) -> torch.Tensor:
        encoder = self.encoder if self.encoder is not None else backbone.encoder
        hidden = self.injection.run(encoder, batch, self.prompt_state(batch), backbone.position_offset)
        return self.head(hidden, batch, backbone.mlm_head)


class SeedGroup(nn.Module):
    """The adapters of one config's seeds over one frozen backbone.

    ``forward(batches, batched) -> [logits_s]``, one batch per seed. ``batched=True`` concatenates the
    seeds' sub-batches into one backbone pass (fills a GPU); ``False`` runs them one after another
    (cheaper on CPU). Parameters are disjoint, so summing the seeds' losses gives each seed exactly
    the gradient of a separate run. The backbone is held outside the module tree: not in the state
    dict, not broadcast by DDP.
    """

    def __init__(self, backbone: Backbone, adapters: Sequence[Adapter], seeds: Sequence[int]):
        super().__init__()
        object.__setattr__(self, "backbone", backbone)
        self.adapters = nn.ModuleList(adapters)
        self.seeds = list(seeds)

    def forward(self, batches: Sequence[PromptedBatch], batched: bool = False) -> list[torch.Tensor]:
        if not batched or len(batches) == 1 or any(a.encoder is not None for a in self.adapters):
            return [adapter(self.backbone, batch) for adapter, batch in zip(self.adapters, batches)]
        return self._forward_batched(batches)

    def _forward_batched(self, batches: Sequence[PromptedBatch]) -> list[torch.Tensor]:
        lengths = [b.input_ids.shape[1] for b in batches]
        merged = concat_batches(batches, pad_id=int(self.backbone.tokenizer.pad_token_id or 0))
        states = [adapter.prompt_state(batch) for adapter, batch in zip(self.adapters, batches)]
        state = None if states[0] is None else concat_states(states)
        hidden = self.adapters[0].injection.run(self.backbone.encoder, merged, state, self.backbone.position_offset)
        logits, start = [], 0
        for adapter, batch, n in zip(self.adapters, batches, lengths):
            part = hidden[start : start + batch.size, :n]
            logits.append(adapter.head(part, batch, self.backbone.mlm_head))
            start += batch.size
        return logits


def concat_states(states: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompt states ``(P [B_i, k_i, w], mask [B_i, k_i])`` along the batch: ``([sum B_i, max k_i, w], mask)``.

    Shorter prompts get masked positions at their end (inference may group adapters whose task prompt or
    hard prompt lengths differ); a masked prompt position changes no input token's output.
    """
    width = max(p.shape[1] for p, _ in states)
    prompts = torch.cat([F.pad(p, (0, 0, 0, width - p.shape[1])) for p, _ in states], dim=0)
    mask = torch.cat([F.pad(m, (0, width - m.shape[1])) for _, m in states], dim=0)
    return prompts, mask


def concat_batches(batches: Sequence[PromptedBatch], pad_id: int) -> PromptedBatch:
    width = max(b.input_ids.shape[1] for b in batches)

    def cat(name: str, value: int) -> torch.Tensor | None:
        parts = [getattr(b, name) for b in batches]
        if any(p is None for p in parts):
            return None
        return torch.cat([F.pad(p, (0, width - p.shape[1]), value=value) for p in parts], dim=0)

    return PromptedBatch(
        input_ids=cat("input_ids", pad_id),
        attention_mask=cat("attention_mask", 0),
        content_mask=cat("content_mask", 0),
        token_type_ids=cat("token_type_ids", 0),
    )


def label_word_ids(tokenizer: Any, words: Sequence[str]) -> list[int]:
    """The first sub-token of each label word, with the leading space BPE vocabularies expect mid-sentence."""
    ids = []
    for word in words:
        pieces = tokenizer.tokenize(" " + word) or tokenizer.tokenize(word)
        ids.append(int(tokenizer.convert_tokens_to_ids(pieces[0])))
    if len(set(ids)) != len(ids):
        raise ValueError(f"label words {list(words)} share a first sub-token; choose distinct words")
    return ids


def build_context(
    method: MethodConfig,
    backbone: Backbone,
    num_labels: int,
    label_words: Sequence[str] | None = None,
    seen_token_ids: torch.Tensor | None = None,
    seed: int = 0,
) -> BuildContext:
    tok = backbone.tokenizer
    verbalizer = method.head == "verbalizer"
    return BuildContext(
        method=method,
        hidden_size=backbone.hidden_size,
        num_layers=backbone.num_layers,
        num_heads=backbone.num_heads,
        vocab_size=backbone.vocab_size,
        num_labels=num_labels,
        word_embeddings=backbone.word_embeddings.weight.detach(),
        label_word_ids=label_word_ids(tok, label_words) if verbalizer and label_words else None,
        mask_token_id=tok.mask_token_id,
        seen_token_ids=seen_token_ids,
        hard_prompt_ids=text_token_ids(tok, method.hard_prompt) if getattr(method, "hard_prompt", None) else None,
        extras={"seed": seed, "backbone": backbone},
    )


def build_adapter(ctx: BuildContext, backbone: Backbone, seed: int) -> Adapter:
    """One seed's adapter; its initialisation depends on ``seed`` only."""
    method = ctx.method
    ctx.extras["seed"] = seed
    torch.manual_seed(seed)
    spec = method.spec
    # A strategy without prompts (fine-tuning) has no source and no injection; one that trains the backbone
    # gets its own trainable copy of the encoder (the shared frozen one stays untouched).
    source = lookup(SOURCES, "strategy", method.strategy).build(ctx) if spec.uses_prompt else None
    injection = lookup(INJECTIONS, "injection", method.injection if spec.uses_prompt else "none").build(ctx)
    head = lookup(HEADS, "head", method.head).build(ctx)
    encoder = copy.deepcopy(backbone.encoder).requires_grad_(True) if spec.trains_backbone else None
    task_prompt = build_task_prompt(ctx) if spec.uses_prompt else None  # after the rest: their init stays as before
    return Adapter(source, injection, head, encoder=encoder, task_prompt=task_prompt)


def count_trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def parameter_report(adapter: Adapter, backbone: Backbone) -> dict[str, float]:
    """Trainable parameters as a count and as % of the (frozen) backbone."""
    trainable = count_trainable(adapter)
    total = backbone.num_parameters()
    return {"trainable_params": trainable, "backbone_params": total, "trainable_pct": 100.0 * trainable / total}


def save_adapter(
    directory: str | Path,
    adapter: Adapter,
    config: ExperimentConfig,
    backbone: Backbone,
    ctx: BuildContext,
    seed: int,
    label_names: Sequence[str],
    metrics: dict[str, float] | None = None,
) -> Path:
    """Write ``adapter_model.safetensors`` (trainable state + data-derived tensors) and ``adapter_config.json``.

    The state keeps its ``state_dict`` names; the build context's tensors (e.g. ``seen_token_ids``) are
    stored as ``context.<name>``. Returns the weights file.
    """
    tensors = dict(adapter.state_dict())
    context = {}
    for name, value in ctx.persistable().items():
        if isinstance(value, torch.Tensor):
            tensors[CONTEXT_PREFIX + name] = value
        else:
            context[name] = value
    body = {"config": config.model_dump(mode="json"), "seed": seed, "context": context,
            "label_names": list(label_names), "metrics": metrics or {}}
    folder = save_artefact(directory, ADAPTER, tensors, body, backbone.identity())
    return folder / ADAPTER_FILE


def load_adapter(directory: str | Path, backbone: Backbone | None = None) -> tuple[ExperimentConfig, Adapter, Backbone, list[str]]:
    """Rebuild a saved adapter onto its backbone (loaded from the saved config when not given).

    ``directory`` is the adapter's folder or its ``adapter_model.safetensors``; anything that is not
    safetensors + JSON (a legacy ``adapter.pt``, any pickle) is refused unread.
    """
    saved = load_artefact(directory, ADAPTER)
    meta = saved.config
    config = as_config(meta["config"])
    if backbone is None:
        backbone = load_backbone(config.backbone, with_mlm_head=config.method.head == "verbalizer")
    check_identity(saved.identity, backbone, f"adapter {saved.directory / ADAPTER_FILE}")
    context = dict(meta.get("context") or {})
    state = {}
    for name, value in saved.tensors.items():
        if name.startswith(CONTEXT_PREFIX):
            context[name[len(CONTEXT_PREFIX):]] = value
        else:
            state[name] = value
    spec = task_spec(config.task, meta["label_names"])  # a described task: its labels as trained
    ctx = build_context(config.method, backbone, spec.num_labels, spec.label_words,
                        context.get("seen_token_ids"), meta["seed"])
    adapter = build_adapter(ctx, backbone, meta["seed"])
    adapter.load_state_dict(state)
    return config, adapter.eval(), backbone, list(meta["label_names"])
