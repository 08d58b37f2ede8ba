"""Encoder IPT (Jiang et al. 2022): a small encoder reads the frozen table rows of the instance's first
tokens and emits its k prompts; it starts random or from the encoder ``ipt-ray pretrain`` trained."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ipt_ray.backbone import ArtefactError, ArtefactInfo, check_identity, inspect_artefact, read_tensors
from ipt_ray.backbone.artefacts import PROMPT_ENCODER
from ipt_ray.batches import PromptedBatch
from ipt_ray.config import MethodConfig
from ipt_ray.config.strategies import EncoderOptions
from ipt_ray.prompts.base import BuildContext, PromptSource, first_content_tokens, register_source
from ipt_ray.prompts.encoders import PromptReadout, build_encoder
from ipt_ray.prompts.sources.soft_prompt import initial_prompt_rows
from ipt_ray.prompts.sources.token_table import initial_table

ENCODER_FOLDER = "encoder_{}"  # under the pretrain output folder, one per encoder type


@register_source("encoder_ipt")
class EncoderPrompt(PromptSource):
    """Encoder IPT: frozen table rows of the first ``max(1, ceil(r * n))`` content tokens -> encoder -> k prompts.

    ``forward(batch) -> (P [B, k, width], mask [B, k] of ones)``; ``width`` defaults to ``init``'s (the prompt width).
    ``n`` is the instance's content-token count and ``r`` is ``seq_util_rate``. ``encoder`` (the body,
    ``rows [B, m, d] -> features [B, m', h]``) and ``readout`` (``-> [B, k, width]``) train; the table
    is a non-persistent buffer rebuilt from ``table_init`` at load time. ``init [k, width]`` starts the
    readout's base (Prompt Tuning's rows).
    """

    def __init__(self, k: int, table: torch.Tensor, encoder: str, hidden: int, seq_util_rate: float,
                 init: torch.Tensor, width: int | None = None):
        super().__init__()
        self.length, self.rate = k, seq_util_rate
        self.register_buffer("table", table, persistent=False)
        dim = table.shape[1]
        self.encoder = build_encoder(encoder, dim, hidden)
        # init is [k, ctx.prompt_width]: d for input injection and prefix + MLP, 2 * layers * d for prefix
        # without projection (the table the encoder reads stays d wide)
        self.readout = PromptReadout(self.encoder.out_dim, k, width or init.shape[-1], init)

    @classmethod
    def build(cls, ctx: BuildContext) -> EncoderPrompt:
        m = ctx.method
        table = initial_table(ctx, m.table_init or cls.spec.default_table_init)
        init = initial_prompt_rows(ctx, m.prompt_length, m.prompt_init)
        hidden = encoder_hidden(m, ctx.hidden_size)
        source = cls(m.prompt_length, table, m.encoder, hidden, m.seq_util_rate, init)
        if m.encoder_init != "random":
            source.encoder.load_state_dict(load_prompt_encoder(m.encoder_init, ctx, table))
        return source

    def read_lengths(self, content_mask: torch.Tensor) -> torch.Tensor:
        n = content_mask.sum(1).float()
        return torch.clamp(torch.ceil(n * self.rate - 1e-6), min=1).long()

    def forward(self, batch: PromptedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = first_content_tokens(batch.input_ids, batch.content_mask, self.read_lengths(batch.content_mask))
        features, valid = self.encoder(F.embedding(ids, self.table), mask)
        return self.readout(features, valid), batch.input_ids.new_ones(batch.size, self.length)


def encoder_hidden(method: MethodConfig, dim: int) -> int:
    """``method.encoder_hidden``, or its default for backbone width ``dim``."""
    return method.encoder_hidden or EncoderOptions.default_hidden(method.encoder, dim)


# ---------------------------------------------------------------- pretrained encoders (method.encoder_init)


def table_fingerprint(table: torch.Tensor) -> list[float]:
    """``[sum, sum of squares]`` of a ``[V, d]`` table in float64, by chunks: which table an encoder read."""
    total, squares = 0.0, 0.0
    for chunk in torch.split(table.detach(), 4096):
        chunk = chunk.double()
        total += float(chunk.sum())
        squares += float((chunk * chunk).sum())
    return [total, squares]


def encoder_artefact(path: str | Path, encoder: str) -> Path:
    """The encoder folder ``path`` names: itself (or its ``encoder.safetensors``), or ``path/encoder_<type>``."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ValueError(f"method.encoder_init: no such file or folder {str(path)!r} (allowed: 'random' or a folder "
                         "written by `ipt-ray pretrain`)")
    if path.is_file() or (path / PROMPT_ENCODER.weights).is_file():
        return path
    sub = path / ENCODER_FOLDER.format(encoder)
    if sub.is_dir():
        return sub
    found = sorted(p.name for p in path.glob(ENCODER_FOLDER.format("*")) if p.is_dir())
    raise ValueError(f"method.encoder_init: {path} holds no {sub.name}/ for method.encoder {encoder!r} "
                     f"(it has: {', '.join(found) or 'no encoder folder'}); pretrain one with pretrain.encoders "
                     f"including {encoder!r}")


def inspect_prompt_encoder(path: str | Path, encoder: str, hidden: int) -> ArtefactInfo:
    """Headers of the pretrained encoder for ``method.encoder`` / ``encoder_hidden`` at ``path`` (no tensor read);
    a wrong type or width is refused naming the field."""
    folder = encoder_artefact(path, encoder)
    try:
        info = inspect_artefact(folder, PROMPT_ENCODER)
    except (ArtefactError, FileNotFoundError) as err:
        raise ArtefactError(f"method.encoder_init: {err}") from None
    saved_type, saved_hidden = info.config.get("encoder"), info.config.get("hidden")
    if saved_type != encoder:
        raise ValueError(f"method.encoder_init: {info.directory} holds a {saved_type!r} encoder, but "
                         f"method.encoder is {encoder!r}")
    if saved_hidden != hidden:
        raise ValueError(f"method.encoder_init: {info.directory} holds a {encoder!r} encoder of encoder_hidden "
                         f"{saved_hidden}, but method.encoder_hidden is {hidden} here (set method.encoder_hidden: "
                         f"{saved_hidden}, or pretrain with pretrain.encoder_hidden: {hidden})")
    return info


def load_prompt_encoder(path: str | Path, ctx: BuildContext, table: torch.Tensor) -> dict[str, torch.Tensor]:
    """The body's state dict from a pretrained encoder artefact, checked against this backbone, the config
    (type, width, every tensor's shape) and the table the encoder will read."""
    m = ctx.method
    hidden = encoder_hidden(m, ctx.hidden_size)
    info = inspect_prompt_encoder(path, m.encoder, hidden)
    what = f"method.encoder_init: prompt encoder {info.directory}"
    identity = ctx.extras.get("backbone")
    if identity is not None:
        check_identity(info.identity, identity, what)
    if info.config.get("dim") != ctx.hidden_size:
        raise ValueError(f"{what} reads rows of width {info.config.get('dim')}, not the backbone's {ctx.hidden_size}")
    expected = {k: tuple(v.shape) for k, v in build_encoder(m.encoder, ctx.hidden_size, hidden).state_dict().items()}
    tensors = read_tensors(info.directory / PROMPT_ENCODER.weights, what)
    state = {k[len("encoder."):]: v for k, v in tensors.items() if k.startswith("encoder.")}
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    if shapes != expected:
        wrong = sorted(set(shapes) ^ set(expected)) or [k for k in expected if shapes[k] != expected[k]]
        raise ValueError(f"{what}: its tensors do not fit a {m.encoder!r} encoder of encoder_hidden {hidden} "
                         f"(first mismatch: encoder.{wrong[0]} {shapes.get(wrong[0])} != {expected.get(wrong[0])})")
    _check_same_table(info.config, table, what)
    return state


def _check_same_table(config: dict[str, Any], table: torch.Tensor, what: str) -> None:
    """The encoder read the pretrained table's rows; another table (the default 'backbone', say) is refused."""
    saved = config.get("table_fingerprint")
    if saved is None:
        return
    here = table_fingerprint(table)
    if any(abs(a - b) > 1e-6 * max(1.0, abs(b)) for a, b in zip(here, saved)):
        raise ValueError(f"{what} was trained on the rows of the prompt table {config.get('table')!r}, but "
                         f"method.table_init gives another table; set method.table_init to that table's folder "
                         f"(the `ipt-ray pretrain` output)")
