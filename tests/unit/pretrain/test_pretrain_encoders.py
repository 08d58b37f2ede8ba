"""``ipt-ray pretrain`` trains and saves Encoder IPT's encoders with the table; ``method.encoder_init`` loads them."""

from __future__ import annotations


import pytest
import torch
import yaml

from ipt_ray.backbone import PROMPT_TABLE, BackboneError, load_artefact
from ipt_ray.backbone.artefacts import PROMPT_ENCODER
from ipt_ray.config import ConfigError, MethodConfig, load_config
from ipt_ray.model import build_adapter, build_context
from ipt_ray.prompts.sources.encoder import table_fingerprint
from tiny_models import synthetic_knowledge_cat

KINDS = ("cnn", "rnn", "mlp")


def _experiment(tmp_path, tiny_bert, **pretrain):
    synthetic_knowledge_cat(tmp_path / "kc", n_per_class=20, max_words=20)
    exp = tmp_path / "exp.yaml"
    exp.write_text(yaml.safe_dump({
        "backbone": {"name": str(tiny_bert)},
        "pretrain": {"sources": [{"kind": "knowledge_cat", "data_dir": "kc"}], "epochs": 2, "batch_size": 8,
                     "lr": 0.01, "embedding_lr": 0.01, "channels": 8, "dropout": 0.1, "encoder_epochs": 3,
                     "encoder_lr": 0.01, "output": str(tmp_path / "out"), **pretrain},
    }))
    return exp


@pytest.fixture(scope="module")
def pretrained(tiny_bert, tmp_path_factory):
    """One tiny pretraining: the table and the three encoders in ``out/``."""
    from ipt_ray.pretrain import run_pretrain

    tmp = tmp_path_factory.mktemp("pretrain-encoders")
    exp = _experiment(tmp, tiny_bert)
    result = run_pretrain(load_config(exp), base_dir=tmp, track=False, log=lambda _: None)
    return tmp / "out", result


def _source(backbone, folder, encoder="cnn", table_init=None, **method):
    cfg = MethodConfig(strategy="encoder_ipt", encoder=encoder, prompt_length=3, encoder_init=str(folder),
                       table_init=str(table_init) if table_init else None, **method)
    return build_adapter(build_context(cfg, backbone, num_labels=2), backbone, seed=0).source


def test_pretrain_writes_the_table_and_three_encoders(pretrained, bert):
    out, result = pretrained
    assert (out / "prompt_table.safetensors").is_file()
    assert sorted(result.encoders) == sorted(KINDS)
    table = load_artefact(out, PROMPT_TABLE).tensors["table"]
    for kind in KINDS:
        saved = load_artefact(out / f"encoder_{kind}", PROMPT_ENCODER)  # safetensors + JSON, no pickle
        assert saved.config["encoder"] == kind and saved.config["dim"] == bert.hidden_size
        assert saved.identity == bert.identity() and saved.config["table"] == str(out)
        assert len(saved.config["history"]) == 3 and 0.0 <= saved.config["heldout_accuracy"] <= 1.0
        assert any(n.startswith("encoder.") for n in saved.tensors) and {"head.weight", "head.bias"} <= set(saved.tensors)
        assert not any("table" in n for n in saved.tensors)  # the table is the table folder's
        assert saved.config["table_fingerprint"] == table_fingerprint(table)
        assert result.encoders[kind]["path"] == str(out / f"encoder_{kind}")


@pytest.mark.parametrize("kind", KINDS)
def test_encoder_init_loads_the_pretrained_encoder(pretrained, bert, kind):
    out, _ = pretrained
    source = _source(bert, out, kind, table_init=out)
    saved = load_artefact(out / f"encoder_{kind}", PROMPT_ENCODER).tensors
    state = source.encoder.state_dict()
    assert state and all(torch.equal(v, saved[f"encoder.{k}"]) for k, v in state.items())
    again = _source(bert, out / f"encoder_{kind}", kind, table_init=out)  # the artefact folder itself works too
    assert all(torch.equal(v, again.encoder.state_dict()[k]) for k, v in state.items())
    fresh = _source(bert, "random", kind, table_init=out)
    assert not all(torch.equal(v, fresh.encoder.state_dict()[k]) for k, v in state.items())


@pytest.mark.parametrize("method,error,match", [
    ({"encoder": "rnn", "folder": "encoder_cnn"}, ValueError,
     r"method\.encoder_init: .*encoder_cnn holds a 'cnn' encoder, but method\.encoder is 'rnn'"),
    ({"encoder": "cnn", "encoder_hidden": 5}, ValueError,
     r"method\.encoder_init: .*encoder_cnn holds a 'cnn' encoder of encoder_hidden 9, but method\.encoder_hidden "
     r"is 5 here"),
    ({"encoder": "mlp", "table": "backbone"}, ValueError,
     r"method\.encoder_init: prompt encoder .*encoder_mlp was trained on the rows of the prompt table .*; set "
     r"method\.table_init"),
    ({"encoder": "cnn", "folder": "nowhere"}, ValueError, r"method\.encoder_init: no such file or folder"),
])
def test_encoder_init_refuses_a_mismatch_naming_the_field(pretrained, bert, method, error, match):
    out, _ = pretrained
    folder = out / method.pop("folder", "")
    table = method.pop("table", None) or out
    with pytest.raises(error, match=match):
        _source(bert, folder, table_init=table if table != "backbone" else "backbone", **method)


def test_encoder_init_refuses_another_backbone(pretrained, roberta):
    out, _ = pretrained
    with pytest.raises(BackboneError, match=r"method\.encoder_init: prompt encoder .*encoder_cnn was made for "
                                            r"backbone .*, not .*tokenizer_hash"):
        _source(roberta, out, "cnn", table_init="backbone")


def test_a_type_the_pretraining_left_out_is_named(tiny_bert, tmp_path, bert):
    from ipt_ray.pretrain import run_pretrain

    exp = _experiment(tmp_path, tiny_bert, encoders=["mlp"], encoder_epochs=1)
    run_pretrain(load_config(exp), base_dir=tmp_path, track=False, log=lambda _: None)
    assert not (tmp_path / "out" / "encoder_cnn").exists()
    with pytest.raises(ValueError, match=r"holds no encoder_rnn/ for method\.encoder 'rnn' \(it has: encoder_mlp\); "
                                         r"pretrain one with pretrain\.encoders including 'rnn'"):
        _source(bert, tmp_path / "out", "rnn", table_init=tmp_path / "out")


def test_config_makes_encoder_init_absolute_and_preflight_checks_it(pretrained, tiny_bert, tmp_path):
    from ipt_ray.preflight import preflight

    out, _ = pretrained
    (tmp_path / "pre").symlink_to(out)
    exp = tmp_path / "e.yaml"
    base = {"task": {"name": "cb", "max_train_samples": 8, "max_eval_samples": 8, "max_length": 32},
            "backbone": {"name": str(tiny_bert)},
            "method": {"strategy": "encoder_ipt", "encoder": "rnn", "prompt_length": 4, "encoder_init": "pre",
                       "table_init": "pre"}}
    exp.write_text(yaml.safe_dump(base))
    cfg = load_config(exp)
    assert cfg.method.encoder_init == str(out.resolve())  # relative to the YAML, made absolute (links resolved)
    preflight(cfg, sweep=False)
    assert load_config(exp, ["method.encoder_init=random"]).method.encoder_init == "random"
    with pytest.raises(ValueError, match=r"method\.encoder_init: .*encoder_rnn holds a 'rnn' encoder of "
                                         r"encoder_hidden \d+, but method\.encoder_hidden is 3 here"):
        preflight(load_config(exp, ["method.encoder_hidden=3"]), sweep=False)


@pytest.mark.parametrize("encoders,match", [(["cnn", "cnn"], "names an encoder twice"),
                                            (["gru"], r"'cnn', 'rnn' or 'mlp'")])
def test_pretrain_encoders_config_errors_name_the_field(tmp_path, encoders, match):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"pretrain": {"encoders": encoders}}))
    with pytest.raises(ConfigError, match=match) as err:
        load_config(path)
    assert "pretrain" in str(err.value)
