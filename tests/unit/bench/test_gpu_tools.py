"""The tools a lent GPU machine runs: their configs and tables (the training itself runs in other tests)."""

from __future__ import annotations

import json

import pytest

import bench.gpu_grid
from bench.cuda_epoch import METHODS, epoch_config
from bench.gpu_grid import grid_configs, report, run_grid
from bench.__main__ import seed_step_figures
from ipt_ray.config import validate_config


@pytest.mark.parametrize("label", list(METHODS))
def test_each_cuda_epoch_method_is_the_paper_config_with_that_method_for_one_epoch(label, tmp_path):
    cfg = epoch_config("/some/roberta", "rte", METHODS[label], epochs=1, max_train=None, out=tmp_path)
    assert (cfg.backbone.name, cfg.task.name, cfg.train.epochs) == ("/some/roberta", "rte", 1)
    # the paper file's own settings stay; the method's fields override only themselves
    assert (cfg.method.prompt_length, cfg.method.head, cfg.train.grad_accumulation, cfg.task.max_length) == (100, "verbalizer", 2, 256)
    for key, value in METHODS[label].items():
        assert getattr(cfg.method, key) == value


def grid(space):
    return validate_config({"task": {"name": "cb"}, "train": {"lr": 0.1, "seeds": [0, 1]},
                            "sweep": {"searcher": "grid", "search_space": space}})


def test_the_grid_runs_every_point_with_the_first_key_varying_fastest():
    cfg = grid({"train.lr": {"type": "choice", "values": [0.01, 0.03]},
                "method": {"type": "choice", "values": [{"strategy": "prompt_tuning"},
                                                        {"strategy": "random_ipt", "injection": "prefix"}]}})
    points = [(c.train.lr, c.method.strategy, c.method.injection) for _, c in grid_configs(cfg)]
    assert points == [(0.01, "prompt_tuning", "input"), (0.03, "prompt_tuning", "input"),
                      (0.01, "random_ipt", "prefix"), (0.03, "random_ipt", "prefix")]


def test_the_grid_refuses_ranges():
    cfg = grid({"train.lr": {"type": "loguniform", "low": 1e-3, "high": 1e-1}})
    with pytest.raises(SystemExit, match="choices only"):
        list(grid_configs(cfg))


def row(method, lr, dev_by_epoch, test_by_epoch, injection="input", strategy=None):
    epochs = []
    for e, (dev, test) in enumerate(zip(dev_by_epoch, test_by_epoch), start=1):
        rec = {"epoch": e, "dev_accuracy_mean": sum(dev) / len(dev), "test_accuracy_mean": sum(test) / len(test)}
        rec.update({f"dev_accuracy/seed_{s}": v for s, v in enumerate(dev)})
        rec.update({f"test_accuracy/seed_{s}": v for s, v in enumerate(test)})
        epochs.append(rec)
    point = {"method": {"strategy": strategy, "injection": injection}} if strategy else {}
    return {"method": method, "lr": lr, "seeds": [0, 1, 2], "point": point, "epochs": epochs}


def test_the_report_takes_test_at_the_lr_and_epoch_dev_chose_and_tests_ipt_against_its_base():
    rows = [
        row("Prompt Tuning", 0.01, [[.5, .5, .5], [.6, .6, .6]], [[.5, .5, .5], [.55, .56, .57]], strategy="prompt_tuning"),
        row("Prompt Tuning", 0.03, [[.7, .7, .7], [.5, .5, .5]], [[.88, .9, .92], [.5, .5, .5]], strategy="prompt_tuning"),
        row("PT + Random IPT", 0.01, [[.8, .8, .8]], [[.60, .62, .64]], strategy="random_ipt"),
    ]
    lines = report(rows)
    assert lines[0].startswith("| method | lr (dev-chosen) | epoch (dev-chosen) | dev | test |")
    by_method = {line.split(" | ")[0].strip("| "): line for line in lines[2:]}
    # Prompt Tuning: dev 0.7 at lr 0.03, epoch 1, whose test (90.0) is reported; never the best test
    assert "| 0.03 | 1 | 70.0 +- 0.0 | 90.0 +- 2.0 |" in by_method["Prompt Tuning"]
    assert "-28.0 vs Prompt Tuning (p = 0.00)" in by_method["PT + Random IPT"]


def test_a_failed_config_is_listed_and_its_epochs_before_the_failure_choose_nothing():
    good = row("Prompt Tuning", 0.01, [[.6, .6, .6]], [[.5, .5, .5]], strategy="prompt_tuning")
    failed = {**row("Prompt Tuning", 0.03, [[.9, .9, .9]], [[.9, .9, .9]], strategy="prompt_tuning"),
              "error": "OutOfMemoryError: CUDA out of memory"}
    lines = report([good, failed])
    assert "| Prompt Tuning | 0.01 | 1 | 60.0 +- 0.0 | 50.0 +- 0.0 | - |" in lines
    assert lines[-1].startswith("| Prompt Tuning | 0.03 | failed: OutOfMemoryError")


class DeviceTimeLimit(BaseException):
    """What ``timeout`` does to the grid: nothing in it gets to handle the end."""


def test_a_grid_cut_short_keeps_its_ended_epochs_and_a_rerun_trains_the_cut_config_again(tmp_path, monkeypatch):
    path = tmp_path / "grid.yaml"
    path.write_text("task: {name: cb}\ntrain: {lr: 0.1, seeds: [0, 1, 2], epochs: 3}\nsweep:\n  searcher: grid\n"
                    "  search_space:\n    train.lr: {type: choice, values: [0.01, 0.03]}\n")
    trained = []

    def fake_run_local(cfg, run_dir, report_fn, limit=None):
        trained.append(cfg.train.lr)
        for epoch in range(1, cfg.train.epochs + 1):
            dev = 0.5 + cfg.train.lr * epoch
            report_fn({"epoch": epoch, "dev_accuracy_mean": dev, "test_accuracy_mean": dev,
                       **{f"{split}_accuracy/seed_{s}": dev for split in ("dev", "test") for s in range(3)}}, None)
            if cfg.train.lr == 0.03 and epoch == 2 and limit:
                raise DeviceTimeLimit
        return {"trainable_pct": 0.1}

    out = tmp_path / "grid.json"
    monkeypatch.setattr(bench.gpu_grid, "run_local", lambda cfg, run_dir, report_fn: fake_run_local(cfg, run_dir, report_fn, limit=True))
    with pytest.raises(DeviceTimeLimit):
        run_grid([str(path)], [], out, tmp_path / "runs")
    rows = json.loads(out.read_text())
    assert [(r["lr"], len(r["epochs"]), r.get("cut_short", False)) for r in rows] == [(0.01, 3, False), (0.03, 2, True)]
    lines = report(rows)
    assert lines[-1] == "| PT + Random IPT | 0.03 | cut short after 2 epochs | | | |"
    assert "| PT + Random IPT | 0.01 | 3 |" in lines[2]  # the cut config's better epochs choose nothing

    monkeypatch.setattr(bench.gpu_grid, "run_local", lambda cfg, run_dir, report_fn: fake_run_local(cfg, run_dir, report_fn))
    run_grid([str(path)], [], out, tmp_path / "runs")
    assert trained == [0.01, 0.03, 0.03]  # the finished config is not trained again
    rows = json.loads(out.read_text())
    assert [(r["lr"], len(r["epochs"]), "cut_short" in r) for r in rows] == [(0.01, 3, False), (0.03, 3, False)]


def test_the_seed_step_figure_is_the_range_of_ratios_and_misses_when_any_method_does():
    times = {"A, 1 seed": [0.010], "A, 5 seeds": [0.019], "B, 1 seed": [0.010], "B, 5 seeds": [0.025]}
    [figure] = seed_step_figures({"device": "NVIDIA H200", "seeds": 5, "times": times})
    assert (figure.value, figure.target, figure.met) == ("1.90, 2.20, 2.50", "<= 2.00", False)
    [on_cpu] = seed_step_figures({"device": "CPU", "seeds": 5, "times": times})
    assert (on_cpu.target, on_cpu.met) == ("report", None)  # the target is for a GPU
