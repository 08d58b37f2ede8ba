"""Category pretraining (``ipt-ray pretrain``) and the prompt-table checkpoint it feeds to Pretrained / Encoder IPT."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from ipt_ray.backbone import PROMPT_TABLE, BackboneError, load_artefact
from ipt_ray.config import ConfigError, MethodConfig, PretrainConfig, load_config
from ipt_ray.data import WIKIPEDIA_CATEGORIES, build_corpus, load_manifest
from ipt_ray.data import stratified_split as heldout_split
from ipt_ray.model import build_adapter, build_context, count_trainable
from ipt_ray.pretrain import save_prompt_table
from ipt_ray.prompts.base import first_content_tokens
from ipt_ray.prompts import TABLE_FORMAT
from tiny_models import synthetic_knowledge_cat


@pytest.fixture(scope="module")
def table_ckpt(bert, tmp_path_factory):
    """A prompt-table checkpoint for the tiny BERT whose rows are unlike its word embeddings."""
    torch.manual_seed(123)
    table = torch.randn(bert.vocab_size, bert.hidden_size)
    path = tmp_path_factory.mktemp("ckpt") / "table"
    save_prompt_table(path, table, bert, list(WIKIPEDIA_CATEGORIES), 0.5)
    return path, table


def _batch(backbone, texts, labels=None):
    from ipt_ray.batches import Collator

    tok = backbone.tokenizer
    enc = tok(texts, return_special_tokens_mask=True)
    rows = [{k: enc[k][i] for k in enc} | {"label": (labels or [0] * len(texts))[i]} for i in range(len(texts))]
    return Collator(tok.pad_token_id, backbone.uses_token_types)(rows)


# ---------------------------------------------------------------- the held-out split


def test_vendored_knowledge_cat_corpus_and_stratified_heldout():
    corpus = build_corpus(PretrainConfig())
    assert len(corpus) == 2500 and set(corpus.sources) == {"knowledge_cat"}
    from ipt_ray.data import VENDORED_KNOWLEDGE_CAT

    raw = [json.loads(line) for f in ("dev", "test") for line in open(VENDORED_KNOWLEDGE_CAT / f"{f}.jsonl")]
    assert corpus.labels.tolist() == [r["label"] for r in raw]  # class id == knowledge_cat id
    train, held = heldout_split(corpus.labels, 0.2, seed=0)
    assert len(np.intersect1d(train, held)) == 0 and len(train) + len(held) == len(corpus)
    for c in range(13):
        n = int((corpus.labels == c).sum())
        assert int((corpus.labels[held] == c).sum()) == round(0.2 * n)
    again, _ = heldout_split(corpus.labels, 0.2, seed=0)
    other, _ = heldout_split(corpus.labels, 0.2, seed=1)
    assert np.array_equal(train, again) and not np.array_equal(train, other)


def test_heldout_keeps_one_row_per_side_of_small_categories():
    train, held = heldout_split(np.array([0, 0, 1, 2, 2, 2]), 0.1, seed=0)
    assert sorted(np.array([0, 0, 1, 2, 2, 2])[held].tolist()) == [0, 2]  # 1 has a single row: it trains
    assert 2 in train.tolist()


# ---------------------------------------------------------------- config


@pytest.mark.parametrize("source,fragment", [
    ({"kind": "knowledge_cat", "path": "x"}, "unknown key(s) ['path'] (allowed: kind, name, data_dir, split, max_rows, dataset)"),
    ({"kind": "20newsgroups"}, "needs data_dir"),
    ({"kind": "knowledge_cat", "split": "validation"}, "split 'validation' is not one of all, train, dev, test"),
    ({"kind": "task", "name": "squad"}, "kind 'task' needs name"),
    ({"kind": "wiki"}, "'knowledge_cat', '20newsgroups', 'task' or 'dataset'"),
])
def test_pretrain_config_errors_name_the_field(tmp_path, source, fragment):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"pretrain": {"sources": [source]}}))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "pretrain.sources.0" in str(err.value) and fragment in str(err.value)


# ---------------------------------------------------------------- end to end


def test_pretrain_cli_trains_tracks_and_writes_a_loadable_checkpoint(tiny_bert, bert, tmp_path, capsys):
    from mlflow.tracking import MlflowClient

    from ipt_ray.cli import main

    synthetic_knowledge_cat(tmp_path / "kc")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    exp = tmp_path / "exp.yaml"
    exp.write_text(yaml.safe_dump({
        "backbone": {"name": str(tiny_bert)},
        "pretrain": {"sources": [{"kind": "knowledge_cat", "data_dir": "kc"}],  # relative to the YAML
                     "epochs": 6, "batch_size": 8, "lr": 0.01, "embedding_lr": 0.01, "channels": 8, "dropout": 0.1,
                     "output": str(tmp_path / "out" / "table")},
        "tracking": {"uri": uri, "experiment": "pretrain-test"},
    }))
    assert main(["pretrain", str(exp), "--set", "pretrain.seed=3", "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "epoch 6:" in out and "held-out accuracy 1.0000" in out
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["heldout_accuracy"] == 1.0 and result["category_counts"]["heldout"]["Mathematics and logic"] == 6

    saved = load_artefact(tmp_path / "out" / "table", PROMPT_TABLE)  # safetensors + JSON, no pickle
    blob = {**saved.config, "table": saved.tensors["table"]}
    assert blob["format"] == TABLE_FORMAT and blob["backbone"] == bert.identity()
    assert blob["table"].shape == (bert.vocab_size, bert.hidden_size) and blob["table"].dtype == torch.float32
    assert blob["categories"] == load_manifest().categories and blob["heldout_accuracy"] == 1.0
    assert np.trace(np.array(blob["confusion"])) == 12
    # only rows of tokens the corpus contains moved; special tokens and unseen ids kept the backbone's rows
    texts = [json.loads(line)["text"] for line in open(tmp_path / "kc" / "dev.jsonl")]
    seen = {i for ids in bert.tokenizer(texts, add_special_tokens=False)["input_ids"] for i in ids}
    moved = set((blob["table"] != bert.word_embeddings.weight).any(dim=1).nonzero().flatten().tolist())
    assert moved and moved <= seen

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(blob["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["ipt.kind"] == "pretrain"
    assert run.data.tags["ipt.checkpoint"] == str((tmp_path / "out" / "table").resolve())
    assert run.data.params["pretrain.seed"] == "3" and run.data.params["heldout_rows"] == "12"
    accuracy = client.get_metric_history(run.info.run_id, "heldout_accuracy")
    assert [m.step for m in accuracy] == [1, 2, 3, 4, 5, 6]
    assert len(client.get_metric_history(run.info.run_id, "train_loss")) == 6
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"confusion_matrix.csv", "category_counts.json", "categories.yaml"} <= artifacts

    # and Pretrained IPT starts from it on the same backbone
    ctx = build_context(MethodConfig(strategy="pretrained_ipt", table_layout="full", prompt_length=3,
                                     table_init=str(tmp_path / "out" / "table")), bert, num_labels=2)
    assert torch.equal(build_adapter(ctx, bert, 0).source.table.rows.weight.detach(), blob["table"])


# ---------------------------------------------------------------- Pretrained / Encoder IPT from a checkpoint


@pytest.mark.parametrize("layout", ["full", "compact"])
def test_pretrained_ipt_starts_from_exactly_the_checkpoint_rows(bert, table_ckpt, layout):
    path, table = table_ckpt
    seen = torch.arange(bert.vocab_size)[::3]
    ctx = build_context(MethodConfig(strategy="pretrained_ipt", table_layout=layout, prompt_length=4,
                                     table_init=str(path)), bert, num_labels=2, seen_token_ids=seen)
    source = build_adapter(ctx, bert, seed=0).source
    weight = source.table.rows.weight.detach()
    if layout == "full":
        assert torch.equal(weight, table)
    else:
        assert torch.equal(weight[1:], table[seen]) and torch.allclose(weight[0], table.mean(0))
    batch = _batch(bert, ["the movie was great and wonderful", "a terrible film"])
    prompts, mask = source(batch)
    ids, _ = first_content_tokens(batch.input_ids, batch.content_mask, 4)
    if layout == "full":
        assert torch.equal(prompts[0], table[ids[0]])


def test_encoder_ipt_keeps_the_pretrained_table_frozen(bert, table_ckpt):
    path, table = table_ckpt
    ctx = build_context(MethodConfig(strategy="encoder_ipt", encoder="cnn", prompt_length=4, table_init=str(path)),
                        bert, num_labels=2)
    adapter = build_adapter(ctx, bert, seed=0)
    assert torch.equal(adapter.source.table, table)
    names = [n for n, _ in adapter.named_parameters()]
    assert not any("table" in n for n in names)  # a buffer, not a parameter
    assert "source.table" not in adapter.state_dict()  # rebuilt from table_init at load time, not saved
    params = [p for p in adapter.parameters() if p.requires_grad]
    assert count_trainable(adapter) == sum(p.numel() for p in params)
    encoder_before = {n: p.detach().clone() for n, p in adapter.source.encoder.named_parameters()}
    batch = _batch(bert, ["the movie was great and wonderful", "a terrible film"], labels=[0, 1])
    opt = torch.optim.Adam(params, lr=0.1)
    loss = torch.nn.functional.cross_entropy(adapter(bert, batch), batch.labels)
    loss.backward()
    opt.step()
    assert torch.equal(adapter.source.table, table)
    assert any(not torch.equal(p, encoder_before[n]) for n, p in adapter.source.encoder.named_parameters())


@pytest.mark.parametrize("strategy", ["pretrained_ipt", "encoder_ipt"])
def test_a_checkpoint_for_another_backbone_is_refused(roberta, table_ckpt, strategy):
    path, _ = table_ckpt
    ctx = build_context(MethodConfig(strategy=strategy, prompt_length=4, table_layout="full", table_init=str(path)),
                        roberta, num_labels=2)
    with pytest.raises(BackboneError, match=r"prompt table .* was made for backbone .*tokenizer_hash"):
        build_adapter(ctx, roberta, seed=0)


def test_a_file_that_is_not_a_prompt_table_is_refused(bert, tmp_path):
    torch.save({"table": torch.zeros(3, 3)}, tmp_path / "x.pt")
    ctx = build_context(MethodConfig(strategy="pretrained_ipt", table_init=str(tmp_path / "x.pt")), bert, num_labels=2)
    with pytest.raises(ValueError, match="not an ipt-ray prompt-table checkpoint"):
        build_adapter(ctx, bert, seed=0)
