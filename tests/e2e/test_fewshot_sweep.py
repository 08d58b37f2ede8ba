"""The few-shot protocol as one `ipt-ray sweep`: cross validation per data seed, then train on K / early-stop
on K / test on validation, both phases under one MLflow parent run."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient
from mlflow.entities import ViewType

from ipt_ray.cli import main
from ipt_ray.results import display_str, mean_std
from ipt_ray.sweep.selection import selected_epoch
from ipt_ray.tracking import SweepTracker

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def fewshot_yaml(tmp_path: Path, backbone: Path) -> Path:
    data = {
        "task": {"name": "cb", "few_shot_k": 4, "cv_folds": 2, "max_eval_samples": 20, "max_length": 48},
        "backbone": {"name": str(backbone)},
        "method": {"strategy": "prompt_tuning", "prompt_length": 4},
        "train": {"epochs": 2, "batch_size": 8, "output_dir": str(tmp_path / "runs"), "progress": False},
        "sweep": {"searcher": "grid", "max_concurrent_trials": 1, "few_shot": {"data_seeds": [3, 7]},
                  "search_space": {
                      "method": {"type": "choice", "values": [{"strategy": "prompt_tuning", "injection": "prefix"}]},
                      "train.lr": {"type": "choice", "values": [1e-3, 3e-2]}}},
        "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "fewshot"},
        "cluster": {"num_workers": 0},
    }
    path = tmp_path / "fewshot.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_fewshot_sweep_runs_select_then_final_under_one_parent(tiny_bert, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = fewshot_yaml(tmp_path, tiny_bert)
    assert main(["sweep", str(path)]) == 0
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("fewshot")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    kinds = Counter(r.data.tags.get("ipt.kind") for r in runs)
    # select trials keep no checkpoint (their weights choose nothing); final trials keep their latest
    sweep_dir = next((tmp_path / "runs" / "sweeps").iterdir())
    kept = {phase: sorted(len(list(t.glob("checkpoint_*"))) for t in (sweep_dir / phase).glob("ipt_trial_*"))
            for phase in ("select", "final")}
    assert kept == {"select": [0] * 8, "final": [1, 1]}
    for phase in ("select", "final"):  # the curves come from the phase's own file: Tune's per-trial files are off
        assert (sweep_dir / phase / "curves.jsonl").is_file()
        assert not list((sweep_dir / phase).glob("ipt_trial_*/result.json"))
    assert kinds == {"parent": 1, "trial": 2 * 2 * 2 + 2, "aggregate": 1}  # lrs x data seeds x folds, then final
    parent = next(r for r in runs if r.data.tags["ipt.kind"] == "parent")
    children = [r for r in runs if r.data.tags["ipt.kind"] != "parent"]
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    select = [r for r in runs if r.data.tags.get("ipt.phase") == "select"]
    final = [r for r in runs if r.data.tags.get("ipt.phase") == "final"]
    assert Counter((r.data.tags["ipt.data_seed"], r.data.tags["ipt.cv_fold"]) for r in select) == {
        (s, f): 2 for s in ("3", "7") for f in ("0", "1")}
    assert all(r.data.tags["ipt.seed"] == r.data.tags["ipt.data_seed"] for r in select + final)
    assert all("test_accuracy" not in r.data.metrics for r in select)  # cross validation never scores test
    assert sorted(r.data.tags["ipt.seed"] for r in final) == ["3", "7"]
    assert len({r.data.tags["ipt.config_id"] for r in final}) == 1  # one group: the data seeds are its seeds

    # each final run is read at its own dev-selected epoch, and test is the value at that epoch
    tests = []
    for run in final:
        dev = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "dev_accuracy")}
        test = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "test_accuracy")}
        assert sorted(dev) == [1, 2]
        epoch = selected_epoch(dev, "max")
        assert run.data.metrics["selected/epoch"] == epoch
        assert run.data.metrics["selected/test_accuracy"] == pytest.approx(test[epoch])
        assert run.data.metrics["selected/dev_accuracy"] == pytest.approx(dev[epoch])
        assert float(run.data.tags["ipt.chosen.train.lr"]) in (1e-3, 3e-2)
        tests.append(test[epoch])

    # the aggregate: test mean ± std over the data seeds, and the chosen values per (group, data seed)
    agg = next(r for r in runs if r.data.tags["ipt.kind"] == "aggregate")
    gid = final[0].data.tags["ipt.config_id"]
    mean, std = mean_std(tests)
    assert agg.data.metrics[f"{gid}/test_accuracy_mean"] == pytest.approx(mean)
    assert agg.data.metrics[f"{gid}/test_accuracy_std"] == pytest.approx(std)
    assert agg.data.metrics["best/test_accuracy_mean"] == pytest.approx(mean)
    assert {"fewshot_selection.json", "fewshot_selection.csv"} <= {a.path for a in client.list_artifacts(agg.info.run_id)}
    chosen = json.loads(Path(client.download_artifacts(agg.info.run_id, "fewshot_selection.json", str(tmp_path))).read_text())
    assert sorted(c["data_seed"] for c in chosen) == [3, 7] and all(c["n_folds"] == 2 for c in chosen)
    for row in chosen:  # the chosen lr is the one with the best fold mean of the select runs' dev values
        fold_means = {}
        for run in select:
            if run.data.tags["ipt.data_seed"] == str(row["data_seed"]):
                dev = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "dev_accuracy")}
                fold_means.setdefault(float(run.data.params["train.lr"]), []).append(max(dev.values()))
        best = max(fold_means.values(), key=lambda v: sum(v))
        assert math.isclose(sum(fold_means[row["hyper"]["train.lr"]]), sum(best))
    assert parent.data.tags.get("ipt.protocol") == "few-shot" or client.get_run(parent.info.run_id).data.tags[
        "ipt.protocol"] == "few-shot"

    # `ipt-ray report` rebuilds the final table (select runs left out) from MLflow alone
    capsys.readouterr()
    assert main(["report", parent.info.run_name, "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
                 "--experiment", "fewshot"]) == 0
    printed = capsys.readouterr().out
    assert gid in printed and printed.count("\n") < 40
    # the learning rate each data seed chose is in the tables, never the YAML's base train.lr
    lrs = Counter(display_str(row["hyper"]["train.lr"]) for row in chosen)
    per_seed = ", ".join(f"{v} x{n}" for v, n in sorted(lrs.items(), key=lambda kv: (-kv[1], kv[0])))
    assert "chosen per seed" in printed and f"train.lr {per_seed}" in printed

    # runs a killed driver could leave: a final trial Tune's snapshot never held, its config never proposed again
    ghost = SweepTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "fewshot", parent.data.tags["ipt.sweep_id"],
                         parent.info.run_name)
    ghost.log_result("ghost", "cfg-ghost", {"train.lr": 0.5}, {"epoch": 1, "dev_accuracy/seed_3": 0.5}, [3],
                     "prompt_tuning", tags={"ipt.phase": "final"})

    # --resume: the finished select phase is not rerun, the final phase is restored: no new runs, and the
    # forgotten trial's run is retired (ended, tagged orphaned, deleted)
    assert main(["sweep", str(path), "--resume"]) == 0
    again = client.search_runs([exp.experiment_id], max_results=1000)
    assert Counter(r.data.tags.get("ipt.kind") for r in again) == kinds
    retired = client.search_runs([exp.experiment_id], "tags.`ipt.trial_id` = 'ghost'", ViewType.DELETED_ONLY)
    assert [(r.info.status, r.data.tags["ipt.status"]) for r in retired] == [("KILLED", "orphaned")]
