"""Seed aggregation, best-config choice, the result tables/plot, several sweeps combined."""

from __future__ import annotations

import csv
import math
from types import SimpleNamespace

import pytest

from ipt_ray.results import (
    ConfigSummary,
    SeedResult,
    SweepSummary,
    aggregate,
    config_id,
    plot,
    read_csv,
    render_console,
    results_from_tune,
    to_csv,
    to_markdown,
    write_artifacts,
)


def seeds(cid: str, values, status: str = "completed", params=None, trial: str | None = None) -> list[SeedResult]:
    params = params if params is not None else {"method.prompt_length": len(cid), "train.lr": 0.01}
    return [SeedResult(cid, trial or f"trial-{cid}", s, v, params, status) for s, v in enumerate(values)]


def by_id(summary: SweepSummary) -> dict[str, ConfigSummary]:
    return {c.config_id: c for c in summary.configs}


# ---------------------------------------------------------------- aggregation


def test_mean_and_sample_std():
    summary = aggregate(seeds("a", [0.8, 0.9, 1.0]) + seeds("b", [0.7]), "accuracy", "max")
    a, b = by_id(summary)["a"], by_id(summary)["b"]
    assert a.mean == pytest.approx(0.9, abs=1e-15) and a.std == pytest.approx(0.1, abs=1e-15)
    assert a.values == {0: 0.8, 1: 0.9, 2: 1.0} and a.n_seeds == 3 and a.trial_ids == ["trial-a"]
    assert b.mean == 0.7 and b.std == 0.0 and b.n_seeds == 1  # one seed: std 0, not NaN
    # independent of the order the seeds arrive in
    again = by_id(aggregate(list(reversed(seeds("a", [0.8, 0.9, 1.0]))), "accuracy"))["a"]
    assert (again.mean, again.std) == (a.mean, a.std)


@pytest.mark.parametrize("mode, best, order", [("max", "hi", ["hi", "mid", "lo"]), ("min", "lo", ["lo", "mid", "hi"])])
def test_best_by_mode_and_best_first(mode, best, order):
    results = seeds("lo", [0.1, 0.2]) + seeds("hi", [0.8, 0.9]) + seeds("mid", [0.5, 0.5])
    summary = aggregate(results, "loss" if mode == "min" else "accuracy", mode)
    assert summary.best.config_id == best
    assert [c.config_id for c in summary.configs] == order
    assert [c.best for c in summary.configs] == [True, False, False]


def test_tie_breaking_is_deterministic():
    # equal means: lower std wins
    s = aggregate(seeds("x", [0.6, 1.0]) + seeds("y", [0.7, 0.9]), "accuracy", "max")
    assert s.best.config_id == "y"
    # equal means and std: more seeds wins
    s = aggregate(seeds("x", [0.8, 0.8]) + seeds("y", [0.8, 0.8, 0.8]), "accuracy", "max")
    assert s.best.config_id == "y"
    # all equal: smaller config id wins, in any input order
    for results in (seeds("b", [0.8, 0.8]) + seeds("a", [0.8, 0.8]), seeds("a", [0.8, 0.8]) + seeds("b", [0.8, 0.8])):
        s = aggregate(results, "accuracy", "max")
        assert [c.config_id for c in s.configs] == ["a", "b"] and s.best.config_id == "a"
    # the same order rules for mode min
    s = aggregate(seeds("x", [0.2, 0.6]) + seeds("y", [0.3, 0.5]), "loss", "min")
    assert s.best.config_id == "y"


def test_failed_config_is_listed_but_never_best():
    results = (seeds("failed", [0.99, 0.99], status="failed") + seeds("ok", [0.5, 0.6])
               + seeds("never", [math.nan, math.nan], status="failed"))
    summary = aggregate(results, "accuracy", "max")
    assert summary.best.config_id == "ok"
    assert [c.config_id for c in summary.configs] == ["ok", "failed", "never"]
    failed = by_id(summary)["failed"]
    assert failed.values == {} and failed.n_seeds == 0 and math.isnan(failed.mean) and not failed.best
    assert failed.status == "failed"
    # only failed configs: no best at all
    assert aggregate(seeds("f", [0.9], status="failed"), "accuracy").best is None


def test_early_stopped_config_is_eligible_through_its_values():
    results = seeds("stopped", [0.9, 0.95], status="early_stopped") + seeds("done", [0.8, 0.85])
    summary = aggregate(results, "accuracy", "max")
    assert summary.best.config_id == "stopped" and summary.best.status == "early_stopped"
    # a stopped seed without a value only counts the seeds that have one
    part = aggregate([SeedResult("p", "t", 0, 0.7, {}, "early_stopped"),
                      SeedResult("p", "t", 1, math.nan, {}, "early_stopped")], "accuracy")
    assert part.best.n_seeds == 1 and part.best.values == {0: 0.7}


def test_repeated_config_keeps_one_value_per_seed():
    results = (seeds("c", [0.5, 0.5], status="failed", trial="t1") + seeds("c", [0.8, 0.9], trial="t2")
               + seeds("c", [0.1, 0.1], status="early_stopped", trial="t0"))
    c = aggregate(results, "accuracy").configs[0]
    assert c.trial_ids == ["t0", "t1", "t2"]
    assert c.values == {0: 0.8, 1: 0.9} and c.status == "completed"


def test_bad_mode():
    with pytest.raises(ValueError, match="mode"):
        aggregate([], "accuracy", "best")


# ---------------------------------------------------------------- tables and files


def sample_summary() -> SweepSummary:
    p = lambda k, lr: {"method.prompt_length": k, "method.strategy": "random_ipt", "train.lr": lr}  # noqa: E731
    return aggregate(seeds("aaaa1111", [0.80, 0.82, 0.84], params=p(8, 0.01))
                     + seeds("bbbb2222", [0.70, 0.75, 0.80], params=p(16, 0.01))
                     + seeds("cccc3333", [math.nan] * 3, status="failed", params=p(32, 0.1)), "accuracy", "max")


def test_markdown_table():
    md = to_markdown(sample_summary())
    lines = md.strip().splitlines()
    assert lines[0] == "| config | method.prompt_length | train.lr | seeds | accuracy mean ± std (%) | status |"
    assert lines[1] == "|---|---|---|---|---|---|"
    assert lines[2] == "| **★ aaaa1111** | **8** | **0.01** | **3** | **82.0 ± 2.0** | **completed** |"
    assert lines[3] == "| bbbb2222 | 16 | 0.01 | 3 | 75.0 ± 5.0 | completed |"
    assert lines[4] == "| cccc3333 | 32 | 0.1 | 0 | - | failed |"
    assert "method.strategy" not in md  # the same for every config


def test_markdown_shows_all_params_when_nothing_varies_and_loss_unscaled():
    s = aggregate(seeds("only", [0.25, 0.35], params={"train.lr": 0.01}), "loss", "min")
    assert to_markdown(s).splitlines()[:3] == [
        "| config | train.lr | seeds | loss mean ± std | status |", "|---|---|---|---|---|",
        "| **★ only** | **0.01** | **2** | **0.3 ± 0.07071** | **completed** |"]


def test_console_table():
    text = render_console(sample_summary())
    lines = text.splitlines()
    assert lines[0].split() == ["config", "method.prompt_length", "train.lr", "seeds", "accuracy", "mean", "±", "std",
                                "(%)", "status"]
    assert set(lines[1]) <= {"-", " "}
    assert lines[2].startswith("★ aaaa1111") and "82.0 ± 2.0" in lines[2]
    assert lines[3].startswith("  bbbb2222")
    # columns line up: each row's status starts where the header's does
    col = lines[0].index("status")
    assert [line[col:].split()[0] for line in lines[2:]] == ["completed", "completed", "failed"]


def test_csv_round_trip(tmp_path):
    summary = sample_summary()
    path = to_csv(summary, tmp_path / "results.csv")
    with path.open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["config_id", "best", "status", "n_seeds", "accuracy_mean", "accuracy_std",
                             "method.prompt_length", "method.strategy", "train.lr", "seed_0", "seed_1", "seed_2",
                             "trial_ids"]
    assert [r["best"] for r in rows] == ["1", "0", "0"]
    assert float(rows[0]["accuracy_mean"]) == summary.configs[0].mean
    assert float(rows[0]["seed_1"]) == 0.82 and rows[2]["seed_0"] == ""
    back = read_csv(path)
    assert back.metric == "accuracy" and back.best.config_id == "aaaa1111"
    assert back.configs[:2] == summary.configs[:2]  # exact: floats, params with their types, seeds, flags
    failed = back.configs[2]
    assert (failed.config_id, failed.n_seeds, failed.values, failed.status, failed.params) == (
        "cccc3333", 0, {}, "failed", summary.configs[2].params)
    assert math.isnan(failed.mean) and math.isnan(failed.std)


def test_plot_and_write_artifacts(tmp_path):
    path = plot(sample_summary(), tmp_path / "p.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    files = write_artifacts(sample_summary(), tmp_path / "out")
    assert {k: p.name for k, p in files.items()} == {"csv": "results.csv", "md": "results.md", "png": "results.png"}
    assert all(p.stat().st_size > 0 for p in files.values())
    assert files["md"].read_text(encoding="utf-8") == to_markdown(sample_summary())


# ---------------------------------------------------------------- readers


def test_results_from_tune_with_fake_result_grid():
    cfg_a = {"method.prompt_length": 8, "train.lr": 0.01}
    cfg_b = {"method.prompt_length": 16, "train.lr": 0.01}

    def metrics(epoch, base, trial):
        return {"epoch": epoch, "trial_id": trial, **{f"dev_accuracy/seed_{s}": base + s / 100 for s in (0, 1)},
                "dev_accuracy_mean": base}

    grid = [SimpleNamespace(metrics=metrics(3, 0.8, "a"), config=cfg_a, error=None, path="/r/a"),
            SimpleNamespace(metrics=metrics(1, 0.6, "b"), config=cfg_b, error=None, path="/r/b"),
            SimpleNamespace(metrics=metrics(2, 0.9, "c"), config={"train.lr": 1.0}, error=RuntimeError("oom"),
                            path="/r/c"),
            SimpleNamespace(metrics={}, config={"train.lr": 2.0}, error=None, path="/r/trial_d")]
    results = results_from_tune(grid, "accuracy", seeds=[0, 1], max_epochs=3)
    assert len(results) == 8
    first = results[0]
    assert first == SeedResult(config_id(cfg_a), "a", 0, 0.8, cfg_a, "completed")
    assert [r.status for r in results[::2]] == ["completed", "early_stopped", "failed", "failed"]
    assert results[7].trial_id == "trial_d" and math.isnan(results[7].value)
    summary = aggregate(results, "accuracy")
    assert summary.best.config_id == config_id(cfg_a)
    assert summary.best.values == {0: 0.8, 1: 0.81}
    # "dev_accuracy" names the same metric
    assert results_from_tune(grid[:1], "dev_accuracy", seeds=[1])[0].value == 0.81



# ---------------------------------------------------------------- several sweeps


def test_expand_sections_turns_a_section_param_into_dotted_keys():
    from ipt_ray.results import expand_sections

    assert expand_sections({"method": '{"encoder": "rnn", "strategy": "encoder_ipt"}', "train.lr": 0.01}) == {
        "method.encoder": "rnn", "method.strategy": "encoder_ipt", "train.lr": 0.01}
    assert expand_sections({"task": {"name": "cb", "few_shot_k": 8}}) == {"task.name": "cb", "task.few_shot_k": 8}
    assert expand_sections({"method": "{broken", "note": '{"a": 1}'}) == {"method": "{broken", "note": '{"a": 1}'}


def test_with_context_adds_what_the_parent_run_knows():
    from ipt_ray.results import SweepContext, combine_results, with_context

    ctx = SweepContext("s", "s", params={"task": "rte", "backbone": "minilm-l6"},
                       base={"task": {"data_dir": "/data", "max_train_samples": 250},
                             "method": {"prompt_length": 16, "strategy": "random_ipt"},
                             "train": {"lr": 0.01, "seeds": [0, 1], "output_dir": "runs"}})
    assert ctx.shared_params() == {"task.max_train_samples": 250, "method.prompt_length": 16,
                                   "method.strategy": "random_ipt", "train.lr": 0.01, "task.name": "rte",
                                   "backbone.name": "minilm-l6"}
    raw = seeds("c1", [0.5, 0.6], params={"method": '{"strategy": "encoder_ipt"}'})
    out = with_context(raw, ctx)
    assert out[0].config_id == "c1"  # kept unless asked
    assert out[0].params["method.strategy"] == "encoder_ipt" and out[0].params["task.name"] == "rte"
    again = with_context(raw, ctx, reid=True)
    assert again[0].config_id == config_id(again[0].params) != "c1"
    other = SweepContext("t", "t", params={"task": "cb"})
    both = combine_results([(ctx, raw), (other, raw)])
    assert len({r.config_id for r in both}) == 2 and len(aggregate(both, "accuracy").configs) == 2


# ---------------------------------------------------------------- test values: reported beside dev, never ranked


def with_test(cid: str, dev, test, **kw) -> list[SeedResult]:
    from dataclasses import replace

    return [replace(r, test=t) for r, t in zip(seeds(cid, dev, **kw), test)]


def test_test_values_are_summarised_but_never_rank():
    # "lucky" has the better test mean, "dev" the better dev mean: dev wins, test is only carried along
    summary = aggregate(with_test("dev", [0.8, 0.9], [0.5, 0.6]) + with_test("lucky", [0.7, 0.8], [0.9, 1.0])
                        + seeds("none", [0.1, 0.2]), "accuracy")
    assert [c.config_id for c in summary.configs] == ["dev", "lucky", "none"] and summary.best.config_id == "dev"
    best = summary.best
    assert best.test_values == {0: 0.5, 1: 0.6} and best.test_mean == pytest.approx(0.55)
    assert best.test_std == pytest.approx(0.1 / 2**0.5)
    none = by_id(summary)["none"]
    assert none.test_values == {} and math.isnan(none.test_mean) and summary.has_test and summary.test_seeds == [0, 1]
    # the same ranking as without any test values
    plain = aggregate(seeds("dev", [0.8, 0.9]) + seeds("lucky", [0.7, 0.8]) + seeds("none", [0.1, 0.2]), "accuracy")
    assert [c.config_id for c in plain.configs] == [c.config_id for c in summary.configs] and not plain.has_test


def test_a_seeds_test_value_comes_from_the_row_its_dev_value_came_from():
    results = (with_test("c", [0.5, 0.5], [0.99, 0.99], status="failed", trial="t1")
               + with_test("c", [0.8, 0.9], [0.6, 0.7], trial="t2"))
    c = aggregate(results, "accuracy").configs[0]
    assert c.values == {0: 0.8, 1: 0.9} and c.test_values == {0: 0.6, 1: 0.7}
    # a seed without a dev value has no test value either
    c = aggregate(with_test("d", [math.nan, 0.7], [0.9, 0.8], status="early_stopped"), "accuracy").configs[0]
    assert c.values == {1: 0.7} and c.test_values == {1: 0.8}


def test_at_best_epoch_reads_test_at_the_epoch_dev_chose():
    from ipt_ray.results import at_best_epoch

    results = seeds("a", [math.nan, math.nan])
    dev = [{1: 0.5, 2: 0.8, 3: 0.6}, {1: 0.7, 2: 0.6, 3: 0.65}]  # seed means 0.6, 0.7, 0.625: epoch 2
    test = [{1: 0.9, 2: 0.4, 3: 0.95}, {1: 0.9, 2: 0.5}]  # test peaks elsewhere
    out = at_best_epoch(results, dev, "max", test)
    assert [(r.value, r.test) for r in out] == [(0.8, 0.4), (0.6, 0.5)]
    partial = at_best_epoch(results, dev, "max", [{}, {2: 0.5}])  # a seed without test at that epoch: NaN
    assert math.isnan(partial[0].test) and partial[1].test == 0.5


def test_results_from_tune_reads_test_beside_dev():
    cfg = {"train.lr": 0.01}
    metrics = {"epoch": 2, "trial_id": "a", "dev_accuracy/seed_0": 0.8, "test_accuracy/seed_0": 0.7,
               "dev_accuracy/seed_1": 0.9}
    grid = [SimpleNamespace(metrics=metrics, config=cfg, error=None, path="/r/a")]
    r0, r1 = results_from_tune(grid, "accuracy", seeds=[0, 1], max_epochs=2)
    assert (r0.value, r0.test) == (0.8, 0.7) and r1.value == 0.9 and math.isnan(r1.test)


def sample_summary_with_test():
    p = lambda k: {"method.prompt_length": k, "train.lr": 0.01}  # noqa: E731
    return aggregate(with_test("aaaa1111", [0.80, 0.82, 0.84], [0.70, 0.72, 0.74], params=p(8))
                     + with_test("bbbb2222", [0.70, 0.75, 0.80], [0.90, 0.90, 0.90], params=p(16))
                     + seeds("cccc3333", [math.nan] * 3, status="failed", params=p(32)), "accuracy", "max")


def test_tables_name_the_split_of_each_column_when_there_is_a_test_split(tmp_path):
    summary = sample_summary_with_test()
    lines = to_markdown(summary).splitlines()
    assert lines[0] == ("| config | method.prompt_length | seeds | dev accuracy mean ± std (%) "
                        "| test accuracy mean ± std (%) | status |")
    assert lines[2] == "| **★ aaaa1111** | **8** | **3** | **82.0 ± 2.0** | **72.0 ± 2.0** | **completed** |"
    assert lines[3] == "| bbbb2222 | 16 | 3 | 75.0 ± 5.0 | 90.0 ± 0.0 | completed |"
    assert lines[4] == "| cccc3333 | 32 | 0 | - | - | failed |"
    console = render_console(summary).splitlines()
    assert "dev accuracy" in console[0] and "test accuracy" in console[0] and "72.0 ± 2.0" in console[2]
    path = to_csv(summary, tmp_path / "results.csv")
    with path.open() as f:
        header = next(csv.reader(f))
    assert header == ["config_id", "best", "status", "n_seeds", "accuracy_mean", "accuracy_std", "test_accuracy_mean",
                      "test_accuracy_std", "method.prompt_length", "train.lr", "seed_0", "seed_1", "seed_2",
                      "test_seed_0", "test_seed_1", "test_seed_2", "trial_ids"]
    back = read_csv(path)
    assert back.configs[:2] == summary.configs[:2] and back.best.config_id == "aaaa1111"
    assert back.configs[2].test_values == {} and math.isnan(back.configs[2].test_mean)


def test_summary_json_keeps_test_values_and_reads_older_summaries():
    from ipt_ray.results import summary_from_json, summary_record, summary_to_json

    summary = sample_summary_with_test()
    back = summary_from_json(summary_to_json(summary))
    assert back.configs[:2] == summary.configs[:2] and back.configs[2].test_values == {}
    record = summary_record(summary)["configs"]
    assert record[0]["test_values"] == {"0": 0.7, "1": 0.72, "2": 0.74} and record[2]["test_mean"] is None
    older = summary_to_json(sample_summary())
    for c in older["configs"]:
        for key in ("test_values", "test_mean", "test_std"):
            c.pop(key)
    assert summary_from_json(older).configs[0].test_values == {}
    assert "test_values" not in summary_record(sample_summary())["configs"][0]  # dev-only: as before


# ---------------------------------------------------------------- few-shot: what selection chose per data seed


def test_a_searched_key_is_not_shared_from_the_yaml():
    from ipt_ray.results import SweepContext

    ctx = SweepContext("s", "s", base={"train": {"lr": 0.01, "epochs": 5},
                                       "sweep": {"search_space": {"train.lr": {"type": "choice", "values": [0.01, 0.03]}}}})
    assert ctx.shared_params() == {"train.epochs": 5}  # each run has its own lr (a few-shot final: the chosen one)


def test_chosen_values_per_seed_survive_json_csv_and_show_in_the_tables(tmp_path):
    from dataclasses import replace

    from ipt_ray.results import chosen_text, read_csv, render_console, summary_from_json, summary_to_json, to_csv

    rows = [replace(r, chosen={"train.lr": lr}) for r, lr in zip(seeds("g", [0.6, 0.7, 0.8]), [0.01, 0.03, 0.01])]
    summary = aggregate(rows, "accuracy")
    assert summary.configs[0].chosen == {0: {"train.lr": 0.01}, 1: {"train.lr": 0.03}, 2: {"train.lr": 0.01}}
    assert chosen_text(summary.configs[0].chosen) == "train.lr 0.01 x2, 0.03 x1"
    assert summary_from_json(summary_to_json(summary)).configs[0].chosen == summary.configs[0].chosen
    assert read_csv(to_csv(summary, tmp_path / "r.csv")).configs[0].chosen == summary.configs[0].chosen
    printed = render_console(summary)
    assert "chosen per seed" in printed and "train.lr 0.01 x2, 0.03 x1" in printed
    assert "chosen" not in render_console(aggregate(seeds("plain", [0.5]), "accuracy"))
