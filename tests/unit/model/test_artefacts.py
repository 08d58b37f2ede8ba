"""Adapters and prompt tables on disk: safetensors + a JSON config, and a pickle where one belongs runs nothing."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from ipt_ray.backbone import ADAPTER, PROMPT_TABLE, ArtefactError, load_artefact
from ipt_ray.config import MethodConfig
from ipt_ray.model import ADAPTER_CONFIG_FILE, ADAPTER_FILE, build_adapter, build_context, load_adapter
from ipt_ray.pretrain import save_prompt_table
from adapters import CB_LABELS, TEXTS, save_perturbed_adapter, text_batch as _batch

LABELS = CB_LABELS


class Trap:
    """Unpickling this creates ``marker``: proof that a loader ran code from the file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def pickle_bytes(marker: Path) -> bytes:
    return pickle.dumps({"format": ADAPTER.format, "state": Trap(marker)})


def torch_zip_bytes(marker: Path, tmp: Path) -> bytes:
    """What ``torch.save`` writes (a zip with a pickle inside), carrying the trap."""
    torch.save({"format": ADAPTER.format, "state": Trap(marker), "table": torch.zeros(2, 2)}, tmp)
    return tmp.read_bytes()


def test_the_trap_is_real(tmp_path):
    """Loading the bytes these tests plant with pickle does create the marker."""
    marker = tmp_path / "ran"
    pickle.loads(pickle_bytes(marker))
    assert marker.exists()
    marker.unlink()
    torch_zip_bytes(marker, tmp_path / "t.pt")
    torch.load(tmp_path / "t.pt", weights_only=False)
    assert marker.exists()


@pytest.fixture
def saved_adapter(bert, tiny_bert, tmp_path):
    """A compact-table Random IPT adapter (data-derived seen ids) saved to ``tmp_path / 'adapter'``."""
    _, adapter, seen = save_perturbed_adapter(
        bert, tiny_bert, tmp_path / "adapter", {"strategy": "random_ipt", "table_layout": "compact", "prompt_length": 3},
        metrics={"accuracy": 0.5})
    return tmp_path / "adapter", adapter, seen


# ---------------------------------------------------------------- round trips


def test_adapter_round_trip_is_peft_shaped_and_predicts_the_same(bert, saved_adapter):
    folder, adapter, seen = saved_adapter
    assert sorted(p.name for p in folder.iterdir()) == sorted([ADAPTER_FILE, ADAPTER_CONFIG_FILE])
    assert (ADAPTER_FILE, ADAPTER_CONFIG_FILE) == ("adapter_model.safetensors", "adapter_config.json")
    meta = json.loads((folder / ADAPTER_CONFIG_FILE).read_text())
    assert meta["format"] == ADAPTER.format and meta["backbone"] == bert.identity()
    assert meta["label_names"] == LABELS and meta["seed"] == 0 and meta["metrics"] == {"accuracy": 0.5}
    assert meta["config"]["method"]["strategy"] == "random_ipt"
    tensors = load_file(str(folder / ADAPTER_FILE))
    assert torch.equal(tensors["context.seen_token_ids"], seen)  # data-derived: in the safetensors, not the JSON
    assert set(tensors) - {"context.seen_token_ids"} == set(adapter.state_dict())

    config, loaded, backbone, labels = load_adapter(folder, backbone=bert)
    assert labels == LABELS and config.method.table_layout == "compact" and backbone is bert
    batch = _batch(bert, TEXTS)
    with torch.no_grad():
        assert torch.equal(loaded(bert, batch), adapter(bert, batch))
    # the weights file itself names the artefact too
    assert torch.equal(load_adapter(folder / ADAPTER_FILE, backbone=bert)[1](bert, batch), adapter(bert, batch))


def test_prompt_table_round_trip(bert, tmp_path):
    table = torch.randn(bert.vocab_size, bert.hidden_size)
    head = {"classifier.out.weight": torch.randn(2, 4)}
    folder = save_prompt_table(tmp_path / "table", table, bert, ["A", "B"], 0.75, tensors=head, history=[{"epoch": 1}])
    assert sorted(p.name for p in folder.iterdir()) == ["prompt_table.safetensors", "prompt_table_config.json"]
    saved = load_artefact(folder, PROMPT_TABLE)
    assert torch.equal(saved.tensors["table"], table) and torch.equal(saved.tensors["classifier.out.weight"],
                                                                      head["classifier.out.weight"])
    assert saved.config["format"] == PROMPT_TABLE.format and saved.identity == bert.identity()
    assert saved.config["categories"] == ["A", "B"] and saved.config["heldout_accuracy"] == 0.75
    assert saved.config["history"] == [{"epoch": 1}] and saved.shapes["table"] == tuple(table.shape)
    ctx = build_context(MethodConfig(strategy="pretrained_ipt", table_layout="full", prompt_length=3,
                                     table_init=str(folder)), bert, num_labels=2)
    assert torch.equal(build_adapter(ctx, bert, 0).source.table.rows.weight.detach(), table)


def test_an_artefact_path_that_is_a_file_is_refused_when_saving(bert, tmp_path):
    (tmp_path / "table.pt").write_bytes(b"old")
    with pytest.raises(ArtefactError, match=r"table\.pt is a file; an ipt-ray prompt-table checkpoint is a folder"):
        save_prompt_table(tmp_path / "table.pt", torch.zeros(2, 2), bert, ["A"], 0.5)


# ---------------------------------------------------------------- pickles are refused unread


@pytest.mark.parametrize("planted", ["pickle", "torch.save"])
def test_a_pickle_as_adapter_model_safetensors_is_refused_and_runs_nothing(bert, saved_adapter, tmp_path, planted):
    folder, _, _ = saved_adapter
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(folder / ADAPTER_CONFIG_FILE, bad)  # a valid config: only the weights file is a trap
    marker = tmp_path / "ran"
    data = pickle_bytes(marker) if planted == "pickle" else torch_zip_bytes(marker, tmp_path / "x.pt")
    (bad / ADAPTER_FILE).write_bytes(data)
    with pytest.raises(ArtefactError, match=r"adapter_model\.safetensors: not an ipt-ray adapter .*refused unread"):
        load_adapter(bad, backbone=bert)
    with pytest.raises(ArtefactError, match=r"refused unread"):
        load_adapter(bad / ADAPTER_FILE, backbone=bert)
    assert not marker.exists()


def test_a_legacy_adapter_pt_is_refused_and_runs_nothing(bert, tmp_path):
    marker = tmp_path / "ran"
    legacy = tmp_path / "seed_0"
    legacy.mkdir()
    (legacy / "adapter.pt").write_bytes(torch_zip_bytes(marker, tmp_path / "x.pt"))
    with pytest.raises(ArtefactError, match=r"seed_0: not an ipt-ray adapter .*no adapter_model\.safetensors; "
                                            r"adapter\.pt: a pickle \(the old format\), refused unread"):
        load_adapter(legacy, backbone=bert)
    with pytest.raises(ArtefactError, match=r"adapter\.pt: not an ipt-ray adapter .*adapter\.pt is a zip archive"):
        load_adapter(legacy / "adapter.pt", backbone=bert)
    (legacy / "adapter.pt").write_bytes(pickle_bytes(marker))  # the pre-zip torch format: a bare pickle
    with pytest.raises(ArtefactError, match=r"adapter\.pt is a pickle; refused unread"):
        load_adapter(legacy / "adapter.pt", backbone=bert)
    assert not marker.exists()


@pytest.mark.parametrize("where", ["folder", "file"])
def test_a_pickle_where_a_prompt_table_belongs_is_refused_and_runs_nothing(bert, tmp_path, where):
    marker = tmp_path / "ran"
    if where == "folder":
        target = save_prompt_table(tmp_path / "table", torch.zeros(bert.vocab_size, bert.hidden_size), bert, ["A"], 0.5)
        (target / "prompt_table.safetensors").write_bytes(pickle_bytes(marker))
    else:  # a legacy prompt_table.pt
        target = tmp_path / "prompt_table.pt"
        target.write_bytes(torch_zip_bytes(marker, tmp_path / "x.pt"))
    ctx = build_context(MethodConfig(strategy="pretrained_ipt", table_init=str(target)), bert, num_labels=2)
    with pytest.raises(ArtefactError, match=r"not an ipt-ray prompt-table checkpoint .*refused unread"):
        build_adapter(ctx, bert, seed=0)
    assert not marker.exists()


def test_a_pickle_as_the_ppt_prompt_is_refused_and_runs_nothing(bert, tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "prompt.safetensors"
    path.write_bytes(torch_zip_bytes(marker, tmp_path / "x.pt"))
    ctx = build_context(MethodConfig(strategy="ppt", prompt_length=2, pretrained_prompt=str(path)), bert, num_labels=2)
    with pytest.raises(ArtefactError, match=r"method\.pretrained_prompt '.*prompt\.safetensors': prompt\.safetensors "
                                            r"is a zip archive.*refused unread"):
        build_adapter(ctx, bert, seed=0)
    assert not marker.exists()
    save_file({"prompt": torch.randn(4, bert.hidden_size)}, str(path))  # and the real thing loads
    assert build_adapter(ctx, bert, seed=0).source.prompt.shape == (2, bert.hidden_size)
