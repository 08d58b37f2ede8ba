"""Bad input never hurts: each malformed input fails with a clear message before anything runs or is written.

Every case runs through ``ipt-ray sweep`` (and ``ipt-ray train`` where the input is not sweep-specific) and
through ``run_sweep``, against an experiment folder that already holds a finished MLflow run, a trained
adapter and its checkpoint. The guards make any training, Ray start, weight loading or MLflow access fail
the test; afterwards every file, folder and MLflow row is compared with the snapshot taken before.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import re
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
import yaml

from ipt_ray.backbone import BackboneError
from ipt_ray.cli import main
from ipt_ray.config import ConfigError, load_config
from ipt_ray.preflight import identity_of, preflight
from ipt_ray.sweep import run_sweep
from ipt_ray.data import DataError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CB = Path(__file__).resolve().parents[3] / "ipt_ray" / "data" / "superglue" / "CB"


# ---------------------------------------------------------------- the world the bad input meets


@dataclass
class World:
    root: Path  # snapshotted: runs/ (adapter + checkpoint) and store/ (MLflow)
    scratch: Path  # not snapshotted: bad data copies, bad backbone folders, YAMLs
    bert: Path
    roberta: Path
    store_uri: str
    adapter_dir: Path
    roberta_table: Path
    narrow_prompt: Path
    base: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_backbones) -> World:
    from mlflow.tracking import MlflowClient

    from ipt_ray.backbone import load_backbone
    from ipt_ray.config import BackboneConfig, validate_config
    from safetensors.torch import save_file

    from ipt_ray.pretrain import save_prompt_table
    from ipt_ray.train import run_local

    root = tmp_path_factory.mktemp("bad-input-world")
    scratch = tmp_path_factory.mktemp("bad-input-scratch")
    (root / "store").mkdir()
    store_uri = f"sqlite:///{root / 'store' / 'mlflow.db'}"
    base = {
        "task": {"name": "cb", "max_train_samples": 16, "max_eval_samples": 8, "max_length": 32},
        "backbone": {"name": str(tiny_backbones["bert"])},
        "method": {"strategy": "random_ipt", "prompt_length": 4},
        "train": {"epochs": 1, "batch_size": 8, "seeds": [0], "output_dir": str(root / "runs"), "progress": False},
        "sweep": {"num_samples": 1, "max_concurrent_trials": 1,
                  "search_space": {"method.prompt_length": {"type": "choice", "values": [4, 8]}}},
        "tracking": {"uri": store_uri, "experiment": "tiny"},
        "cluster": {"num_workers": 0},
    }
    # A finished run and a trained adapter (with its checkpoint) that no bad input may touch.
    client = MlflowClient(store_uri)
    exp = client.create_experiment("tiny", artifact_location=(root / "store" / "mlartifacts").as_uri())
    run = client.create_run(exp, run_name="finished-before", tags={"ipt.kind": "trial", "ipt.seed": "0"})
    for step, acc in ((1, 0.5), (2, 0.625)):
        client.log_metric(run.info.run_id, "dev_accuracy", acc, step=step)
    client.log_param(run.info.run_id, "method.prompt_length", "4")
    client.set_terminated(run.info.run_id, "FINISHED")
    adapter_run = root / "runs" / "existing"
    run_local(validate_config(base), run_dir=adapter_run)
    roberta = load_backbone(BackboneConfig(name=str(tiny_backbones["roberta"])))
    table = save_prompt_table(scratch / "roberta_table", torch.zeros(roberta.vocab_size, roberta.hidden_size),
                              roberta, ["c0", "c1"], 0.5)
    narrow = scratch / "narrow_prompt.safetensors"
    save_file({"prompt": torch.zeros(8, 16)}, str(narrow))  # [k, 16], the backbone is 32 wide
    return World(root=root, scratch=scratch, bert=tiny_backbones["bert"], roberta=tiny_backbones["roberta"],
                 store_uri=store_uri, adapter_dir=adapter_run / "seed_0", roberta_table=table, narrow_prompt=narrow,
                 base=base)


def snapshot(world: World) -> dict[str, Any]:
    """Every file (bytes, mtime) and folder under the world's root, and the MLflow rows of the store."""
    files, dirs = {}, []
    for p in sorted(world.root.rglob("*")):
        rel = str(p.relative_to(world.root))
        if p.is_dir():
            dirs.append(rel)
        else:
            st = p.stat()
            files[rel] = (st.st_size, st.st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
    db = world.root / "store" / "mlflow.db"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        mlflow_rows = {
            "runs": con.execute("select run_uuid, status, lifecycle_stage, end_time from runs order by 1").fetchall(),
            "metrics": con.execute("select run_uuid, key, value, step from metrics order by 1, 2, 4").fetchall(),
            "tags": con.execute("select run_uuid, key, value from tags order by 1, 2").fetchall(),
            "params": con.execute("select run_uuid, key, value from params order by 1, 2").fetchall(),
            "experiments": con.execute("select name, lifecycle_stage from experiments order by 1").fetchall(),
        }
    con.close()
    return {"files": files, "dirs": dirs, "mlflow": mlflow_rows}


@pytest.fixture
def guards(monkeypatch):
    """Anything that trains, starts Ray, loads weights or opens MLflow fails the test."""
    import ray

    import ipt_ray.backbone
    import ipt_ray.backbone.loading
    import ipt_ray.model.adapter
    import ipt_ray.tracking
    import ipt_ray.tracking.client
    import ipt_ray.tracking.tracker
    import ipt_ray.sweep.driver
    import ipt_ray.sweep.trial
    import ipt_ray.train
    import ipt_ray.train.inputs
    import ipt_ray.train.loop

    def forbid(what: str) -> Callable[..., Any]:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError(f"{what} was reached: the bad input was not caught up front")
        return refuse

    monkeypatch.setattr(ray, "init", forbid("ray.init"))
    # Each name is patched where it is defined, where its package re-exports it and where a module imports it.
    for modules, name, what in (
        ((ipt_ray.train, ipt_ray.train.loop, ipt_ray.sweep.trial), "train_loop_per_worker", "training"),
        ((ipt_ray.train, ipt_ray.train.inputs, ipt_ray.train.loop), "prepared_inputs", "tokenising / loading the backbone"),
        ((ipt_ray.backbone, ipt_ray.backbone.loading, ipt_ray.train.inputs, ipt_ray.model.adapter), "load_backbone",
         "loading model weights"),
        ((ipt_ray.tracking, ipt_ray.tracking.client, ipt_ray.sweep.driver), "check_reachable", "MLflow"),
        ((ipt_ray.tracking, ipt_ray.tracking.tracker, ipt_ray.sweep.driver), "SweepTracker", "MLflow"),
        ((ipt_ray.tracking.client, ipt_ray.tracking.tracker), "MlflowClient", "MLflow"),
    ):
        for module in modules:
            if hasattr(module, name):
                monkeypatch.setattr(module, name, forbid(what))


# ---------------------------------------------------------------- the cases


def merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "search_space":
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def cb_copy(world: World, name: str, train: str | bytes | None, gz: bool = False, val: bool = True) -> str:
    """A CB folder with a (bad) train file; ``train=None`` copies the real one."""
    folder = world.scratch / "data" / name / "CB"
    folder.mkdir(parents=True)
    data = (CB / "train.jsonl").read_bytes() if train is None else train
    data = data.encode() if isinstance(data, str) else data
    (folder / ("train.jsonl.gz" if gz else "train.jsonl")).write_bytes(data)
    if val:
        shutil.copy(CB / "val.jsonl", folder / "val.jsonl")
    return str(folder)


def cb_lines() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (CB / "train.jsonl").read_text().splitlines()]


def jsonl(rows: list[Any]) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


def bad_json(world: World) -> dict[str, Any]:
    rows: list[Any] = cb_lines()
    rows[2] = json.dumps(rows[2])[:40]  # cut short
    return {"task": {"data_dir": cb_copy(world, "bad-json", jsonl(rows))}}


def unknown_label(world: World) -> dict[str, Any]:
    rows = cb_lines()
    rows[1]["label"] = "maybe"
    return {"task": {"data_dir": cb_copy(world, "unknown-label", jsonl(rows))}}


def missing_field(world: World) -> dict[str, Any]:
    rows = cb_lines()
    del rows[3]["hypothesis"]
    return {"task": {"data_dir": cb_copy(world, "missing-field", jsonl(rows))}}


def truncated_gzip(world: World) -> dict[str, Any]:
    blob = gzip.compress((CB / "train.jsonl").read_bytes())
    return {"task": {"data_dir": cb_copy(world, "truncated-gzip", blob[: len(blob) // 2], gz=True)}}


def backbone_without(world: World, name: str, *patterns: str) -> dict[str, Any]:
    folder = world.scratch / name
    shutil.copytree(world.bert, folder, ignore=shutil.ignore_patterns(*patterns))
    return {"backbone": {"name": str(folder)}}


@dataclass
class Case:
    id: str
    patch: Callable[[World], dict[str, Any]]
    error: type[BaseException]
    match: str
    commands: tuple[str, ...] = ("sweep", "train")  # "train" only where the input is not sweep-specific
    at_load: bool = False  # caught by the typed config itself (load_config)


def space(**dims: dict[str, Any]) -> dict[str, Any]:
    return {"sweep": {"search_space": {k.replace("__", "."): v for k, v in dims.items()}}}


CASES = [
    # -- the typed config (load_config)
    Case("yaml-unknown-key", lambda w: {"method": {"strateg": "random_ipt"}}, ConfigError,
         r"method\.strateg: unknown key \(allowed: strategy, injection, head, ", at_load=True),
    Case("wrong-type", lambda w: {"train": {"epochs": "three"}}, ConfigError,
         r"train\.epochs: Input should be a valid integer.*got 'three'", at_load=True),
    Case("negative-prompt-length", lambda w: {"method": {"prompt_length": -4}}, ConfigError,
         r"method\.prompt_length: Input should be greater than or equal to 0; got -4", at_load=True),
    Case("seq-util-rate-zero", lambda w: {"method": {"seq_util_rate": 0}}, ConfigError,
         r"method\.seq_util_rate: Input should be greater than 0; got 0", at_load=True),
    Case("seq-util-rate-above-one", lambda w: {"method": {"seq_util_rate": 1.5}}, ConfigError,
         r"method\.seq_util_rate: Input should be less than or equal to 1; got 1\.5", at_load=True),
    Case("unknown-task", lambda w: {"task": {"name": "mnli"}}, ConfigError,
         r"task\.name: Input should be 'boolq', 'cb', 'rte', .*; got 'mnli'", at_load=True),
    Case("unknown-encoder", lambda w: {"method": {"encoder": "gru"}}, ConfigError,
         r"method\.encoder: Input should be 'cnn', 'rnn' or 'mlp'; got 'gru'", at_load=True),
    Case("unknown-strategy", lambda w: {"method": {"strategy": "lora"}}, ConfigError,
         r"method\.strategy: Input should be 'fine_tuning', 'prompt_tuning', .*; got 'lora'", at_load=True),
    Case("missing-data-dir", lambda w: {"task": {"data_dir": str(w.scratch / "no-such-data")}}, ConfigError,
         r"task\.data_dir '.*no-such-data' is not a directory", at_load=True),
    Case("unknown-search-key", lambda w: space(method__foo={"type": "choice", "values": [1]}), ConfigError,
         r"unknown search key 'method\.foo' \(allowed: method\.<field>, train\.<field>, task\.<field>", at_load=True),
    Case("bad-search-range", lambda w: space(train__lr={"type": "loguniform", "low": 0.1, "high": 0.01}),
         ConfigError, r"sweep\.search_space\.train\.lr: .*'low' \(0\.1\) must be < 'high' \(0\.01\)", at_load=True),
    # -- the search space, config by config (preflight)
    Case("search-range-outside-field", lambda w: space(method__seq_util_rate={"type": "uniform", "low": 0.5,
                                                                              "high": 1.5}),
         ConfigError, r"sweep\.search_space\.method\.seq_util_rate: high 1\.5 gives an invalid config:\n"
                      r"\s+method\.seq_util_rate: Input should be less than or equal to 1", commands=("sweep",)),
    Case("search-choice-invalid", lambda w: space(method__encoder={"type": "choice", "values": ["cnn", "gru"]}),
         ConfigError, r"sweep\.search_space\.method\.encoder: choice 'gru' gives an invalid config:\n"
                      r"\s+method\.encoder: Input should be 'cnn', 'rnn' or 'mlp'; got 'gru'", commands=("sweep",)),
    Case("search-combination-invalid",
         lambda w: space(method__strategy={"type": "choice", "values": ["random_ipt", "fine_tuning"]},
                         method__head={"type": "choice", "values": ["classifier", "verbalizer"]}),
         ConfigError, r"the combination (?=[^\n]*method\.strategy='fine_tuning')(?=[^\n]*method\.head='verbalizer')"
                      r"[^\n]* gives an invalid config:\n.*method\.head must be 'classifier' or 'mean_classifier' for strategy 'fine_tuning'",
         commands=("sweep",)),
    Case("grid-with-float-range", lambda w: {"sweep": {"searcher": "grid", "search_space": {
        "train.lr": {"type": "loguniform", "low": 0.001, "high": 0.01}}}},
         ConfigError, r"sweep\.search_space\.train\.lr: searcher 'grid' needs choice or int dimensions, not "
                      r"'loguniform'", commands=("sweep",)),
    Case("metric-not-reported", lambda w: {"sweep": {"metric": "f1a"}}, ConfigError,
         r"sweep\.metric 'f1a' is not reported for task 'cb' \(allowed: accuracy, loss\)"),
    # -- data files (every task the sweep can touch is parsed)
    Case("data-empty-file", lambda w: {"task": {"data_dir": cb_copy(w, "empty", "")}}, DataError,
         r"CB/train\.jsonl line 1: file is empty \(no records\)"),
    Case("data-bad-json-line", bad_json, DataError, r"CB/train\.jsonl line 3: bad JSON \(.*truncated line\?\)"),
    Case("data-unknown-label", unknown_label, DataError,
         r"CB/train\.jsonl line 2: unknown label 'maybe' \(allowed: entailment, contradiction, neutral\)"),
    Case("data-missing-field", missing_field, DataError, r"CB/train\.jsonl line 4: field 'hypothesis' missing"),
    Case("data-truncated-gzip", truncated_gzip, DataError,
         r"CB/train\.jsonl\.gz line \d+: truncated or corrupt gzip data"),
    Case("data-missing-split", lambda w: {"task": {"data_dir": cb_copy(w, "no-val", None, val=False)}}, DataError,
         r"task\.data_dir: cb: no validation file in .*CB \(looked for: val\.jsonl, val\.jsonl\.gz\)"),
    Case("few-shot-k-too-large", lambda w: {"task": {"few_shot_k": 100}}, ValueError,
         r"task 'cb': class '\w+' \(\d\) has \d+ train examples; k=100 needs 200 \(100 train \+ 100 dev\)"),
    Case("search-task-choice-bad-data",
         lambda w: merge({"task": {"data_dir": cb_copy(w, "cb-only", None)}},
                         space(task__name={"type": "choice", "values": ["cb", "rte"]})),
         DataError, r"sweep\.search_space\.task\.name: choice 'rte': CB/train\.jsonl line \d+: unknown label "
                    r"'(contradiction|neutral)' \(allowed: entailment, not_entailment\)", commands=("sweep",)),
    # -- the backbone
    Case("backbone-path-missing", lambda w: {"backbone": {"name": str(w.scratch / "no-such-backbone")}},
         BackboneError, r"backbone\.name '.*no-such-backbone': no such folder"),
    Case("backbone-without-config", lambda w: backbone_without(w, "bb-no-config", "config.json"), BackboneError,
         r"backbone\.name '.*bb-no-config': folder has no config\.json \(not a Hugging Face checkpoint\)"),
    Case("backbone-without-tokenizer",
         lambda w: backbone_without(w, "bb-no-tokenizer", "tokenizer*", "vocab*", "special_tokens_map.json"),
         BackboneError, r"backbone\.name '.*bb-no-tokenizer': folder .* has no tokenizer files \(looked for: "
                        r"tokenizer\.json, vocab\.txt"),
    Case("backbone-hub-name-not-cached", lambda w: {"backbone": {"name": "nobody/not-a-cached-model"}},
         BackboneError, r"backbone\.name 'nobody/not-a-cached-model' is not in the Hugging Face cache and downloads "
                        r"are off \(HF_HUB_OFFLINE=1\)"),
    Case("verbalizer-without-mlm-head", lambda w: {"method": {"head": "verbalizer"}}, BackboneError,
         r"method\.head 'verbalizer' needs an MLM head, but backbone '.*' is a BertModel checkpoint"),
    Case("too-many-positions", lambda w: {"task": {"max_length": 150}, "method": {"prompt_length": 16}}, ConfigError,
         r"task\.max_length 150 \+ method\.prompt_length 16 = 166 positions, more than backbone '.*' has "
         r"\(160 max_position_embeddings\)"),
    Case("too-many-positions-with-a-hard-prompt",  # 140 + 16 fit in 160; the hard prompt's rows do not
         lambda w: {"task": {"max_length": 140}, "method": {"prompt_length": 16, "hard_prompt": "Culture and the Arts"}},
         ConfigError, r"task\.max_length 140 \+ method\.prompt_length \+ the \d+ tokens of hard_prompt 'Culture and "
                      r"the Arts' \d+ = \d+ positions, more than backbone '.*' has \(160 max_position_embeddings\)"),
    # -- the method's files
    Case("table-init-for-another-backbone",
         lambda w: {"method": {"strategy": "pretrained_ipt", "table_init": str(w.roberta_table)}}, BackboneError,
         r"method\.table_init: prompt table .*roberta_table was made for backbone '.*roberta', not '.*bert' "
         r"\(model_type: 'roberta' != 'bert'"),
    Case("table-init-missing", lambda w: {"method": {"strategy": "encoder_ipt",
                                                     "table_init": str(w.scratch / "missing.pt")}}, ValueError,
         r"method\.table_init: no such prompt-table checkpoint '.*missing\.pt' \(allowed: 'random', 'backbone' or "),
    Case("pretrained-prompt-missing", lambda w: {"method": {"strategy": "ppt",
                                                            "pretrained_prompt": str(w.scratch / "nope.pt")}},
         ValueError, r"method\.pretrained_prompt: no such file '.*nope\.pt'"),
    Case("pretrained-prompt-wrong-width", lambda w: {"method": {"strategy": "ppt",
                                                                "pretrained_prompt": str(w.narrow_prompt)}},
         ValueError, r"method\.pretrained_prompt '.*narrow_prompt\.safetensors' has shape \(8, 16\), expected \[k, 32\]"),
    Case("pretrained-prompt-for-prefix-without-projection",
         lambda w: {"method": {"strategy": "ppt", "injection": "prefix", "prefix_projection": "none",
                               "pretrained_prompt": str(w.narrow_prompt)}},
         ValueError, r"method\.pretrained_prompt '.*narrow_prompt\.safetensors' has shape \(8, 16\), expected \[k, "
                     r"\d+\] for backbone '.*' \(method\.prefix_projection: none feeds every layer's keys and values"),
]


def write_yaml(world: World, case_id: str, patch: dict[str, Any]) -> Path:
    path = world.scratch / "yaml" / f"{case_id}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(merge(world.base, patch)))
    return path


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_fails_clearly_before_anything_runs(case, world, guards, capsys):
    path = write_yaml(world, case.id, case.patch(world))
    before = snapshot(world)
    if case.at_load:
        with pytest.raises(case.error) as caught:
            load_config(path)
    else:
        cfg = load_config(path)
        with pytest.raises(case.error) as caught:
            run_sweep(cfg, path)
    assert re.search(case.match, str(caught.value)), str(caught.value)
    for command in case.commands:
        assert main([command, str(path)]) == 2, command
        err = capsys.readouterr().err
        assert re.search(case.match, err), (command, err)
    assert snapshot(world) == before


def test_the_cases_cover_the_brief():
    assert len(CASES) >= 20
    assert len({c.id for c in CASES}) == len(CASES)


def test_the_base_config_and_the_shipped_experiments_pass(world, guards):
    base = load_config(write_yaml(world, "good", {}))
    preflight(base)
    preflight(base, sweep=False)
    repo = Path(__file__).resolve().parents[3]
    for name in ("quickstart.yaml", "quickstart-tiny.yaml"):
        preflight(load_config(repo / "experiments" / name))


def test_identity_of_matches_the_loaded_backbone_without_loading_weights(world):
    from ipt_ray.backbone import load_backbone
    from ipt_ray.config import BackboneConfig

    for path in (world.bert, world.roberta):
        assert identity_of(str(path)) == load_backbone(BackboneConfig(name=str(path))).identity()


def test_adapter_for_another_backbone_is_refused_and_left_intact(world, capsys, tmp_path):
    from ipt_ray.backbone import load_backbone
    from ipt_ray.config import BackboneConfig
    from ipt_ray.model import load_adapter

    before = snapshot(world)
    roberta = load_backbone(BackboneConfig(name=str(world.roberta)))
    with pytest.raises(BackboneError, match=r"adapter .*adapter_model\.safetensors was made for backbone '.*bert', not "
                                            r"'.*roberta' \(model_type: 'bert' != 'roberta'"):
        load_adapter(world.adapter_dir, backbone=roberta)
    # Through the CLI: an adapter whose config names a backbone it was not trained on.
    saved = json.loads((world.adapter_dir / "adapter_config.json").read_text())
    saved["config"]["backbone"]["name"] = str(world.roberta)
    (tmp_path / "moved").mkdir()
    shutil.copy(world.adapter_dir / "adapter_model.safetensors", tmp_path / "moved")
    (tmp_path / "moved" / "adapter_config.json").write_text(json.dumps(saved))
    assert main(["interpret", str(tmp_path / "moved"), "--text", "the movie was great"]) == 2
    assert re.search(r"was made for backbone '.*bert', not '.*roberta'", capsys.readouterr().err)
    assert snapshot(world) == before
    config, adapter, backbone, labels = load_adapter(world.adapter_dir)  # still loads onto its own backbone
    assert labels == ["entailment", "contradiction", "neutral"] and backbone.identity()["model_type"] == "bert"
