"""Encoder IPT's encoders (appendix A.3): sizes at the paper's setting, masked inputs, what trains."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ipt_ray.batches import Collator
from ipt_ray.config import MethodConfig
from ipt_ray.config.strategies import EncoderOptions
from ipt_ray.model import build_adapter, build_context
from ipt_ray.prompts import PromptReadout, StackedLSTM, TextCNN, TokenMLP, build_encoder
from ipt_ray.prompts.sources.encoder import EncoderPrompt

KINDS = ("cnn", "rnn", "mlp")


def roberta_large_parameters() -> int:
    """roberta-large as the hub ships it (with its pooler), on the meta device: no weights, no download."""
    from transformers import RobertaConfig, RobertaModel

    config = RobertaConfig(vocab_size=50265, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                           intermediate_size=4096, max_position_embeddings=514, type_vocab_size=1, pad_token_id=1)
    with torch.device("meta"):
        return sum(p.numel() for p in RobertaModel(config).parameters())


def encoder_prompt_size(kind: str, dim: int, k: int, vocab: int = 50265) -> int:
    with torch.device("meta"):
        source = EncoderPrompt(k, torch.empty(vocab, dim), kind, EncoderOptions.default_hidden(kind, dim), 1.0,
                               torch.empty(k, dim))
    return sum(p.numel() for p in source.parameters() if p.requires_grad)


def test_roberta_large_has_355_4m_parameters():
    assert round(roberta_large_parameters() / 1e5) == 3554


@pytest.mark.parametrize("kind", KINDS)
def test_each_default_encoder_is_half_a_percent_of_roberta_large_at_table6_setting(kind):
    share = encoder_prompt_size(kind, dim=1024, k=100) / roberta_large_parameters()
    assert 0.004 <= share <= 0.006, f"{kind}: {100 * share:.3f}%"


@pytest.mark.parametrize("kind", KINDS)
def test_defaults_scale_with_the_backbone_width(kind):
    large, small = encoder_prompt_size(kind, 1024, 100), encoder_prompt_size(kind, 384, 100, vocab=30522)
    assert 0.1 < small / large < 0.2  # ~(384 / 1024)^2: MiniLM gets a proportionally small encoder
    assert EncoderOptions.default_hidden(kind, 384) < EncoderOptions.default_hidden(kind, 1024)


def test_layers_are_those_of_appendix_a3():
    cnn, rnn, mlp = (build_encoder(kind, 16, 8) for kind in KINDS)
    assert isinstance(cnn, TextCNN) and len(cnn.convs) == 3  # three convolutions, each followed by a max-pool
    assert isinstance(rnn, StackedLSTM) and rnn.lstm.num_layers == 3 and rnn.lstm.bidirectional
    linears = lambda m: sum(isinstance(x, torch.nn.Linear) for x in m.modules())  # noqa: E731
    readout = PromptReadout(8, 4, 16, torch.zeros(4, 16))
    assert linears(rnn) + linears(readout) == 3  # two per-position linears + the readout's output layer
    assert isinstance(mlp, TokenMLP) and linears(mlp) + linears(readout) == 3
    with pytest.raises(ValueError, match=r"unknown encoder 'gru' \(allowed: cnn, rnn, mlp\)"):
        build_encoder("gru", 16, 8)


@pytest.mark.parametrize("kind", KINDS)
def test_shapes_and_a_padded_instance_gives_what_it_gives_alone(kind):
    torch.manual_seed(0)
    dim, hidden, k = 12, 10, 5
    body, readout = build_encoder(kind, dim, hidden).eval(), PromptReadout(hidden, k, 7, torch.randn(k, 7))
    rows = torch.randn(3, 11, dim)
    lengths = torch.tensor([11, 4, 1])
    mask = (torch.arange(11).unsqueeze(0) < lengths.unsqueeze(1)).long()
    features, valid = body(rows, mask)
    expected_m = math.ceil(11 / 8) if kind == "cnn" else 11
    assert features.shape == (3, expected_m, hidden) and valid.shape == (3, expected_m)
    prompts = readout(features, valid)
    assert prompts.shape == (3, k, 7)
    garbage = rows.clone()
    garbage[mask == 0] = 100.0  # what sits at masked positions must not matter
    prompts_garbage = readout(*body(garbage, mask))
    for i, n in enumerate(lengths.tolist()):
        alone = readout(*body(rows[i:i + 1, :n], torch.ones(1, n, dtype=torch.long)))
        assert torch.allclose(prompts[i], alone[0], atol=1e-5), (kind, n)
        assert torch.allclose(prompts_garbage[i], alone[0], atol=1e-5), (kind, n)


@pytest.mark.parametrize("kind", KINDS)
def test_an_empty_instance_gets_the_base_prompts(kind):
    body, readout = build_encoder(kind, 6, 4), PromptReadout(4, 3, 6, torch.randn(3, 6))
    prompts = readout(*body(torch.randn(2, 5, 6), torch.zeros(2, 5, dtype=torch.long)))
    assert torch.isfinite(prompts).all() and torch.allclose(prompts, readout.base.expand(2, -1, -1))


def test_prompts_start_near_prompt_tunings_initialisation():
    torch.manual_seed(0)
    init = torch.randn(4, 16)
    body, readout = build_encoder("mlp", 16, 8), PromptReadout(8, 4, 16, init)
    prompts = readout(*body(torch.randn(2, 6, 16), torch.ones(2, 6, dtype=torch.long)))
    assert torch.equal(readout.base.detach(), init)
    assert (prompts - init).norm() < 0.2 * init.norm() * math.sqrt(2)  # the word-embedding rows, nudged per instance
    # pooling starts as the masked mean (queries near zero): the pooling the pretraining head reads
    other_width = PromptReadout(8, 4, 32, init)
    assert other_width.base.shape == (4, 32)  # another prompt width (a prefix) starts from noise of the init's scale


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_reach_only_the_encoder_and_readout(bert, kind):
    ctx = build_context(MethodConfig(strategy="encoder_ipt", encoder=kind, prompt_length=3),
                        bert, num_labels=2)
    adapter = build_adapter(ctx, bert, seed=0)
    source = adapter.source
    assert "table" not in dict(source.named_parameters()) and not source.table.requires_grad
    tok = bert.tokenizer
    long = "the movie was great and wonderful and the acting was terrible but the plot was fine " * 2
    enc = tok([long, "bad"], return_special_tokens_mask=True)  # > 8 tokens: the pooled CNN keeps > 1 position
    batch = Collator(tok.pad_token_id, bert.uses_token_types)(
        [{k: enc[k][i] for k in enc} | {"label": i} for i in range(2)])
    table_before = source.table.clone()
    F.cross_entropy(adapter(bert, batch), batch.labels).backward()
    assert all(p.grad is None for p in bert.encoder.parameters())
    assert source.table.grad is None and torch.equal(source.table, table_before)
    for name, p in source.named_parameters():
        assert name.startswith(("encoder.", "readout.")) and p.grad is not None and p.grad.abs().sum() > 0, name
