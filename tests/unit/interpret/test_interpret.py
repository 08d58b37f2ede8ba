"""Interpretability: nearest vocabulary tokens of instance-wise prompts, and the sentence-vs-prompt projection."""

from __future__ import annotations

import json

import pytest
import torch

from ipt_ray.config import MethodConfig, validate_config
from ipt_ray.interpret import load_projection_data, nearest_tokens, projection_plot
from ipt_ray.model import build_adapter, build_context, save_adapter

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_adapter(backbone, num_labels=3, **method):
    cfg = MethodConfig(**method)
    seen = torch.arange(backbone.vocab_size)
    ctx = build_context(cfg, backbone, num_labels, seen_token_ids=seen)
    return build_adapter(ctx, backbone, seed=0).eval(), ctx


def content_tokens(backbone, text):
    return backbone.tokenizer.tokenize(text)


@pytest.mark.parametrize("name", ["bert", "roberta"])
def test_soft_prompt_made_of_vocab_rows_is_explained_by_exactly_those_tokens(request, name):
    backbone = request.getfixturevalue(name)
    adapter, _ = make_adapter(backbone, strategy="prompt_tuning", prompt_length=4)
    tokens = list(dict.fromkeys(content_tokens(backbone, "the movie was great and wonderful acting")))[:4]
    ids = backbone.tokenizer.convert_tokens_to_ids(tokens)
    with torch.no_grad():
        adapter.source.prompt.copy_(backbone.word_embeddings.weight[ids])
    rows = nearest_tokens(adapter, backbone, "any input at all", top_k=3)
    assert len(rows) == 4 and all(len(r) == 3 for r in rows)
    assert [r[0][0] for r in rows] == tokens
    assert all(r[0][1] == pytest.approx(1.0, abs=1e-5) for r in rows)
    assert all(r[1][1] < r[0][1] - 1e-6 and r[2][1] <= r[1][1] for r in rows)  # descending, a strict winner


def test_token_table_from_the_backbone_gives_back_the_first_k_input_tokens(bert):
    adapter, _ = make_adapter(bert, strategy="random_ipt", table_layout="full", table_init="backbone", prompt_length=5)
    text = "the movie was great and wonderful acting"
    rows = nearest_tokens(adapter, bert, text, top_k=2)
    assert [r[0][0] for r in rows] == content_tokens(bert, text)[:5]
    assert all(r[0][1] == pytest.approx(1.0, abs=1e-5) for r in rows)
    # a shorter input has fewer (unmasked) prompt vectors
    short = nearest_tokens(adapter, bert, "great film", top_k=2)
    assert len(short) == len(content_tokens(bert, "great film")) < 5


@pytest.mark.parametrize("strategy,extra,injection", [
    ("prompt_tuning", {}, "prefix"),
    ("structured", {"hypernetwork": "lowrank"}, "input"),
    ("random_ipt", {"table_layout": "compact"}, "input"),
    ("pretrained_ipt", {"table_layout": "lowrank"}, "prefix"),
    ("encoder_ipt", {"encoder": "cnn", "seq_util_rate": 0.5}, "input"),
    ("encoder_ipt", {"encoder": "rnn"}, "prefix"),
    ("encoder_ipt", {"encoder": "mlp"}, "input"),
])
def test_every_source_gives_one_ranked_row_per_prompt_vector(bert, strategy, extra, injection):
    k = 4
    adapter, _ = make_adapter(bert, strategy=strategy, injection=injection, prompt_length=k, **extra)
    rows = nearest_tokens(adapter, bert, "the movie was great and wonderful acting today", top_k=6)
    assert len(rows) == k and all(len(r) == 6 for r in rows)
    special = set(bert.tokenizer.all_special_tokens)
    for row in rows:
        cosines = [c for _, c in row]
        assert cosines == sorted(cosines, reverse=True) and all(-1.0 - 1e-6 <= c <= 1.0 + 1e-6 for c in cosines)
        assert not special & {t for t, _ in row}


def test_fine_tuning_has_nothing_to_explain(bert):
    adapter, _ = make_adapter(bert, strategy="fine_tuning")
    with pytest.raises(ValueError, match="no prompt source"):
        nearest_tokens(adapter, bert, "a film")


def test_prefix_without_projection_is_refused_naming_the_option(bert):
    adapter, _ = make_adapter(bert, strategy="prompt_tuning", injection="prefix", prefix_projection="none",
                              prompt_length=4)
    with pytest.raises(ValueError, match="prefix_projection: none"):
        nearest_tokens(adapter, bert, "a film")


def test_projection_plot_writes_a_png_with_both_projections(bert, tmp_path):
    import matplotlib.image

    adapter, _ = make_adapter(bert, strategy="random_ipt", table_layout="full", prompt_length=3)
    texts = ["the movie was great", "a terrible film", "yes no maybe", "the answer is true",
             "sports business world", "technology news today"] * 2
    labels = ["film", "film", "qa", "qa", "news", "news"] * 2
    proj = projection_plot(adapter, bert, texts, labels, tmp_path / "fig" / "proj.png", title="tiny")
    data = (tmp_path / "fig" / "proj.png").read_bytes()
    assert data.startswith(PNG_MAGIC)
    image = matplotlib.image.imread(tmp_path / "fig" / "proj.png")
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 200
    assert proj.sentence_xy.shape == proj.prompt_xy.shape == (12, 2)
    assert set(proj.silhouette) == {"sentence", "prompt"} and -1 <= proj.silhouette["prompt"] <= 1
    with pytest.raises(ValueError, match="12 texts but 2 labels"):
        projection_plot(adapter, bert, texts, labels[:2], tmp_path / "x.png")


def test_projection_data_from_knowledge_cat_is_named_by_the_manifest():
    texts, labels = load_projection_data("knowledge_cat", max_rows=40)
    assert len(texts) == len(labels) == 40
    from ipt_ray.data import load_manifest

    assert set(labels) <= set(load_manifest().categories)


def test_interpret_cli_prints_the_table_and_writes_the_projection(tiny_bert, bert, tmp_path, capsys):
    from ipt_ray.cli import main

    config = validate_config({"task": {"name": "cb", "max_length": 64}, "backbone": {"name": str(tiny_bert)},
                              "method": {"strategy": "encoder_ipt", "prompt_length": 3, "encoder": "cnn"}})
    ctx = build_context(config.method, bert, 3)
    adapter = build_adapter(ctx, bert, seed=0)
    save_adapter(tmp_path / "adapter", adapter, config, bert, ctx, 0, ["entailment", "contradiction", "neutral"])

    assert main(["interpret", str(tmp_path / "adapter"), "--text", "the movie was great", "--top-k", "2"]) == 0
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert len(table) == 3 and all(line.count("(") == 2 for line in table)

    rows = [{"text": "the movie was great", "label": "film"}, {"text": "yes no maybe", "label": "qa"},
            {"text": "a terrible film", "label_name": "film"}, {"text": "the answer", "text_b": "is true", "label": "qa"}]
    (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    assert main(["interpret", str(tmp_path / "adapter"), "--project", str(tmp_path / "rows.jsonl"),
                 "--out", str(tmp_path / "a.png")]) == 0
    assert main(["interpret", str(tmp_path / "adapter"), "--project", "cb", "--max-rows", "16",
                 "--out", str(tmp_path / "b.png")]) == 0
    assert (tmp_path / "a.png").read_bytes().startswith(PNG_MAGIC)
    assert (tmp_path / "b.png").read_bytes().startswith(PNG_MAGIC)
    assert "projection of 16 texts written to" in capsys.readouterr().out
    assert main(["interpret", str(tmp_path / "adapter")]) == 2
