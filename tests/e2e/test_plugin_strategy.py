"""A strategy defined in a test module (tests/plugins/scaled_prompt.py), with no file under ipt_ray/
edited: it validates from YAML, trains, runs in a tiny sweep, and appears in the paper report under its
own label and in the significance table against its declared base."""

from __future__ import annotations

import pytest
from plugins.experiment import plugin_yaml

from ipt_ray.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.mark.slow
def test_plugin_strategy_trains_sweeps_and_reports_against_its_base(tmp_path, tiny_bert, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = plugin_yaml(tmp_path, tiny_bert)
    # trains in-process, and its adapter reloads onto the backbone
    assert main(["train", str(path), "--set", "train.seeds=[0]"]) == 0
    from ipt_ray.model import load_adapter

    adapter_dir = next((tmp_path / "runs").rglob("seed_0"))
    cfg, adapter, _, _ = load_adapter(adapter_dir)
    assert cfg.method.strategy == "scaled_prompt" and type(adapter.source).__name__ == "ScaledSoftPrompt"
    # a sweep in Ray trials (other processes: the plugin is loaded there from the config)
    assert main(["sweep", str(path)]) == 0
    capsys.readouterr()
    sweep = next((tmp_path / "runs" / "sweeps").glob("plugin-sweep-*")).name
    out = tmp_path / "report"
    assert main(["report", sweep, "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
                 "--experiment", "plugin", "--paper", "--out", str(out)]) == 0
    paper = (out / "paper.md").read_text()
    assert "| Scaled PT |" in paper and "| Prompt Tuning |" in paper
    significance = (out / "significance.md").read_text()
    assert "Scaled PT" in significance and "Prompt Tuning" in significance
