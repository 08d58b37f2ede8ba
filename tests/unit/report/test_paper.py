"""Paper-style tables and plots (ipt_ray.report), the experiment files, and the quoted numbers."""

from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path

import pytest
import yaml

from ipt_ray.report import paper
from ipt_ray.config import load_config
from ipt_ray.results import SeedResult, SweepContext, aggregate, combine_results, config_id
from ipt_ray.sweep import decode_params, encode_choice

ROOT = Path(__file__).resolve().parents[3]
EXPERIMENTS = sorted((ROOT / "experiments").rglob("*.yaml"))
PAPER_FILES = sorted(p for p in (ROOT / "experiments" / "paper").glob("*.yaml") if not p.stem.startswith("pretrain"))
CPU_FILES = sorted((ROOT / "experiments" / "cpu").glob("*.yaml"))
PNG = b"\x89PNG\r\n\x1a\n"


def fake(params: dict, values, status: str = "completed") -> list[SeedResult]:
    cid = config_id(params)
    return [SeedResult(cid, f"t-{cid}", s, v, params, status) for s, v in enumerate(values)]


def cfg(task: str, strategy: str, **more) -> dict:
    """Trial params as a `method` section dimension + `task.name` + `train.lr` record them."""
    lr = more.pop("lr", 0.01)
    extra = {k: more.pop(k) for k in list(more) if "." in k}
    return {"method": json.dumps({"strategy": strategy, **more}, sort_keys=True), "task.name": task, "train.lr": lr,
            **extra}


# ---------------------------------------------------------------- labels


@pytest.mark.parametrize("method, label", [
    ({"strategy": "fine_tuning", "head": "classifier"}, "Fine-tuning"),
    ({"strategy": "prompt_tuning"}, "Prompt Tuning"),
    ({"strategy": "prompt_tuning", "injection": "prefix"}, "Prefix Tuning"),
    ({"strategy": "ppt", "pretrained_prompt": "p.pt"}, "PPT"),
    ({"strategy": "structured"}, "Structured PT"),
    ({"strategy": "random_ipt", "table_init": "random"}, "PT + Random IPT"),
    ({"strategy": "pretrained_ipt", "injection": "prefix"}, "Prefix + Pretrained IPT"),
    ({"strategy": "encoder_ipt", "encoder": "rnn"}, "PT + Encoder IPT (rnn)"),
    ({"strategy": "encoder_ipt", "injection": "prefix"}, "Prefix + Encoder IPT (cnn)"),  # the default encoder
])
def test_method_label_in_every_param_form(method, label):
    dotted = {f"method.{k}": v for k, v in method.items()}
    for params in ({"method": method}, {"method": json.dumps(method)}, dotted):
        assert paper.method_label(paper.effective_method(params)) == label


def test_labels_name_the_variant_fields_that_vary_and_nothing_else():
    results = (fake(cfg("cb", "structured", hypernetwork="linear"), [0.5])
               + fake(cfg("cb", "structured", hypernetwork="mlp"), [0.6])
               + fake(cfg("cb", "random_ipt", table_layout="full", lr=0.01), [0.6])  # lr: a hyper-parameter,
               + fake(cfg("cb", "random_ipt", table_layout="full", lr=0.03), [0.7])  # never part of a label
               + fake(cfg("cb", "encoder_ipt", encoder="rnn", table_init="runs/pretrain/minilm-l6-kc.pt"), [0.7])
               + fake(cfg("cb", "encoder_ipt", encoder="rnn", table_init="backbone"), [0.7]))
    labels = paper.method_labels(aggregate(results, "accuracy").configs)
    assert sorted(set(labels.values())) == [
        "PT + Encoder IPT (rnn) [table_init=backbone]", "PT + Encoder IPT (rnn) [table_init=minilm-l6-kc]",
        "PT + Random IPT", "Structured PT [hypernetwork=linear]", "Structured PT [hypernetwork=mlp]"]


# ---------------------------------------------------------------- methods x tasks


def two_task_results() -> list[SeedResult]:
    return (fake(cfg("cb", "prompt_tuning", lr=0.01), [0.70, 0.72, 0.74])
            + fake(cfg("cb", "prompt_tuning", lr=0.03), [0.60, 0.62, 0.64])
            + fake(cfg("rte", "prompt_tuning", lr=0.01), [0.55, 0.56, 0.57])
            + fake(cfg("rte", "prompt_tuning", lr=0.03), [0.58, 0.60, 0.62])
            + fake(cfg("cb", "prompt_tuning", injection="prefix"), [0.80, 0.82, 0.84])
            + fake(cfg("rte", "prompt_tuning", injection="prefix"), [0.60, 0.61, 0.62])
            + fake(cfg("cb", "encoder_ipt", encoder="cnn"), [0.76, 0.78, 0.80])
            + fake(cfg("rte", "encoder_ipt", encoder="cnn"), [0.64, 0.66, 0.68])
            + fake(cfg("rte", "random_ipt"), [math.nan] * 3, status="failed"))


def test_methods_by_tasks_markdown_bold_best_and_paper_column():
    table = paper.build_table(aggregate(two_task_results(), "accuracy"))
    assert table.tasks == ["cb", "rte"] and table.compares
    assert table.methods == ["Prompt Tuning", "Prefix Tuning", "PT + Encoder IPT (cnn)"]  # paper order; failed: no row
    md = paper.to_markdown(table)
    lines = md.splitlines()
    # every row is a Table 2 cell of the IPT paper: its row label, and its value beside ours in each task
    assert lines[0] == "| method | paper row | CB | CB paper | RTE | RTE paper | avg |"
    assert lines[1] == "|---|---|---|---|---|---|---|"
    # best lr per task: 0.01 / 0.03; [a]: the backbone (not recorded), [b]: the split, [c]: 3 epochs
    assert lines[2] == ("| Prompt Tuning | T2: Prompt Tuning | 72.0 ± 2.0 | 71.3 [a,b,c] | 60.0 ± 2.0 | 50.2 [a,b,c] | "
                        "66.0 |")
    assert lines[3] == ("| Prefix Tuning | T2: Prefix Tuning | **82.0 ± 2.0** | 100.0 [a,b,c] | 61.0 ± 1.0 | "
                        "84.8 [a,b,c] | 71.5 |")
    assert lines[4].startswith("| PT + Encoder IPT (cnn) | T2: Prompt Tuning + Encoder IPT (CNN) | 78.0 ± 2.0 | 82.1 ")
    assert "best configuration on the dev mean over: `train.lr`" in md
    assert "arXiv:2206.01958" in md and "  - [c] epochs: ours 3; the paper 20-100" in md
    # P-tuning v2's RTE number only in its own section, under its own name
    assert "86.6" not in md.split("Other published numbers")[0]
    assert "- P-tuning v2 RTE 86.6 (Liu et al. 2022, P-Tuning v2" in md
    chosen = table.cell("Prompt Tuning", "rte")
    assert chosen.hyper["train.lr"] == 0.03 and chosen.values == pytest.approx({0: 0.58, 1: 0.60, 2: 0.62})


def test_mode_min_bolds_the_lowest_and_loss_is_not_percent():
    results = fake({"method.strategy": "prompt_tuning", "task.name": "cb"}, [0.5, 0.7]) + \
        fake({"method.strategy": "random_ipt", "task.name": "cb"}, [0.2, 0.4])
    md = paper.to_markdown(paper.build_table(aggregate(results, "loss", "min")))
    assert "| PT + Random IPT | **0.3 ± 0.1414** |" in md and "| Prompt Tuning | 0.6 ± 0.1414 |" in md


def test_cells_with_fewer_seeds_are_marked():
    results = fake({"method.strategy": "prompt_tuning", "task.name": "cb"}, [0.5, 0.7, 0.6]) + \
        fake({"method.strategy": "random_ipt", "task.name": "cb"}, [0.8])
    md = paper.to_markdown(paper.build_table(aggregate(results, "accuracy")))
    assert "| PT + Random IPT | T2: Prompt Tuning + Random IPT | **80.0 ± 0.0 (n=1)** |" in md


def test_csv_one_row_per_cell_with_selected_hyper_params_and_quote(tmp_path):
    table = paper.build_table(aggregate(two_task_results(), "accuracy"))
    path = paper.to_csv(table, tmp_path / "paper.csv")
    rows = list(csv.DictReader(path.open()))
    assert [(r["method"], r["task"]) for r in rows] == [
        ("Prompt Tuning", "cb"), ("Prompt Tuning", "rte"), ("Prefix Tuning", "cb"), ("Prefix Tuning", "rte"),
        ("PT + Encoder IPT (cnn)", "cb"), ("PT + Encoder IPT (cnn)", "rte")]
    first = rows[0]
    assert float(first["mean"]) == pytest.approx(0.72) and float(first["std"]) == pytest.approx(0.02)
    assert json.loads(first["hyper_params"]) == {"train.lr": 0.01}
    assert (first["n_seeds"], first["best"], first["seed_2"]) == ("3", "0", "0.74")
    prefix_rte = rows[3]
    paper_cell = (prefix_rte["paper_table"], prefix_rte["paper_row"], prefix_rte["paper_value"])
    assert paper_cell == ("2", "Prefix Tuning", "84.8")
    assert "arXiv:2206.01958" in prefix_rte["paper_source"] and "backbone: ours ?" in prefix_rte["paper_differs"]
    assert rows[2]["best"] == "1" and rows[5]["best"] == "1"


def test_multirc_column_uses_its_own_metric():
    acc = aggregate(fake(cfg("multirc", "prompt_tuning"), [0.7, 0.8]) + fake(cfg("cb", "prompt_tuning"), [0.6, 0.6]),
                    "accuracy")
    f1a = aggregate(fake(cfg("multirc", "prompt_tuning"), [0.5, 0.6]) + fake(cfg("cb", "prompt_tuning"), [0.0, 0.0]),
                    "f1a")
    table = paper.build_table({"accuracy": acc, "f1a": f1a}, paper.parse_task_metrics([]))
    assert table.metrics == {"cb": "accuracy", "multirc": "f1a"}
    md = paper.to_markdown(table)
    assert md.splitlines()[0] == "| method | paper row | CB | CB paper | MultiRC (F1a) | MultiRC paper | avg |"
    assert ("| Prompt Tuning | T2: Prompt Tuning | **60.0 ± 0.0** | 71.3 [a,b,c] | **55.0 ± 7.1** | "
            "56.7 [a,b,c,d] |") in md
    assert "  - [d] metric: ours F1a; the paper does not state it." in md  # the paper's MultiRC metric
    assert paper.parse_task_metrics(["multirc=em", "cb=accuracy"]) == {"multirc": "em", "cb": "accuracy"}
    with pytest.raises(ValueError, match="TASK=METRIC"):
        paper.parse_task_metrics(["multirc"])


def test_cross_validation_folds_are_averaged_per_seed_then_selected():
    results = []
    for fold, base in enumerate([0.50, 0.60, 0.70, 0.80]):  # lr 0.01: fold means 0.65 / 0.66
        results += fake(cfg("cb", "prompt_tuning", lr=0.01, **{"task.cv_fold": fold, "task.few_shot_k": 8}),
                        [base, base + 0.01])
        results += fake(cfg("cb", "prompt_tuning", lr=0.03, **{"task.cv_fold": fold, "task.few_shot_k": 8}),
                        [base - 0.1, base - 0.1])
    table = paper.build_table(aggregate(results, "accuracy"))
    c = table.cell("Prompt Tuning", "cb")
    assert c.n_folds == 4 and c.hyper["train.lr"] == 0.01
    assert c.values == pytest.approx({0: 0.65, 1: 0.66})
    assert table.settings == {"cb": "few-shot"} and table.selected_over == ["train.lr"]
    md = paper.to_markdown(table)
    assert "mean over 4 cross-validation folds" in md and md.splitlines()[0] == "| method | CB |"
    assert "No cell of the IPT paper's Tables 2, 3, 5 and 6 matches" in md  # Table 3 has no Prompt Tuning row


def test_plots_are_pngs_with_one_line_per_method(tmp_path):
    results = []
    for k, (pt, enc) in {5: (0.6, 0.7), 20: (0.65, 0.8), 80: (0.7, 0.75)}.items():
        results += fake(cfg("cb", "prompt_tuning", **{"method.prompt_length": k}), [pt, pt + 0.02])
        results += fake(cfg("cb", "encoder_ipt", **{"method.prompt_length": k}), [enc, enc + 0.02])
        results += fake(cfg("rte", "encoder_ipt", **{"method.prompt_length": k}), [enc - 0.1, enc - 0.1])
    summary = aggregate(results, "accuracy")
    assert paper.plot_keys(summary) == ["method.prompt_length"]
    paths = paper.write_artifacts(summary, tmp_path)
    # PT vs Encoder IPT on CB: the significance tables come along, one at each prompt length
    assert set(paths) == {"paper_md", "paper_csv", "significance_md", "prompt_length_png", "prompt_length_csv",
                          "prompt_length_significance_md"}
    per_length = paths["prompt_length_significance_md"].read_text()
    assert "| IPT variant | vs | task | method.prompt_length |" in per_length
    assert all(f"| PT + Encoder IPT (cnn) | Prompt Tuning | CB | {k} | dev | +{d} |" in per_length
               for k, d in ((5, "10.0"), (20, "15.0"), (80, "5.0")))
    data = paths["prompt_length_png"].read_bytes()
    assert data[:8] == PNG and len(data) > 5000
    rows = list(csv.DictReader(paths["prompt_length_csv"].open()))
    assert {(r["method"], r["task"], r["method.prompt_length"]) for r in rows} >= {
        ("Prompt Tuning", "cb", "5"), ("PT + Encoder IPT (cnn)", "rte", "80")}
    curve = paper.build_table(summary, x_key="method.prompt_length")
    assert curve.cell("PT + Encoder IPT (cnn)", "cb", 20).mean == pytest.approx(0.81)
    # the table (no x) keeps the best prompt length per cell and says it selected over it
    table = paper.build_table(summary)
    assert table.cell("PT + Encoder IPT (cnn)", "cb").hyper["method.prompt_length"] == 20
    assert "method.prompt_length" in table.selected_over
    # seq_util_rate, when it varies, is plotted the same way
    rate = [r for v in (0.1, 1.0) for r in fake(cfg("cb", "encoder_ipt", **{"method.seq_util_rate": v}), [v, v])]
    more = paper.write_artifacts(aggregate(rate, "accuracy"), tmp_path / "rate")
    assert more["seq_util_rate_png"].read_bytes()[:8] == PNG


def test_combining_sweeps_keeps_their_tasks_apart():
    # two sweeps with the same sampled values (one method dimension) and the task only in their parent runs
    sampled = {"method": json.dumps({"strategy": "encoder_ipt", "encoder": "cnn"})}
    a = SweepContext("s-cb", "s-cb", params={"task": "cb"}, base={"method": {"head": "classifier"}})
    b = SweepContext("s-rte", "s-rte", params={"task": "rte"}, base={"task": {"name": "rte", "data_dir": "/x"}})
    ra, rb = fake(sampled, [0.7, 0.8]), fake(sampled, [0.5, 0.6])
    assert ra[0].config_id == rb[0].config_id  # what MLflow's tags say: the same config
    combined = combine_results([(a, ra), (b, rb)])
    summary = aggregate(combined, "accuracy")
    assert len(summary.configs) == 2
    table = paper.build_table(summary)
    assert table.tasks == ["cb", "rte"] and table.methods == ["PT + Encoder IPT (cnn)"]
    assert table.cell("PT + Encoder IPT (cnn)", "rte").mean == pytest.approx(0.55)
    assert all("task.data_dir" not in r.params for r in combined)  # where the data was is not a parameter
    # one sweep keeps the config ids MLflow has
    single = combine_results([(a, ra)])
    assert {r.config_id for r in single} == {ra[0].config_id} and single[0].params["task.name"] == "cb"


# ---------------------------------------------------------------- `ipt-ray report` end to end (MLflow)


def _log_sweep(uri: str, sweep: str, task: str, tmp_path: Path) -> None:
    from ipt_ray import results as report
    from ipt_ray.tracking import SweepTracker

    tracker = SweepTracker(uri, "ipt-paper-test", sweep, sweep)
    base = {"task": {"name": task}, "backbone": {"name": "minilm-l6"}, "method": {"head": "classifier"}}
    tracker.start_parent(yaml.safe_dump(base), {}, "v0", {"task": task, "backbone": "minilm-l6"})
    variants = {"t1": {"strategy": "prompt_tuning"}, "t2": {"strategy": "encoder_ipt", "encoder": "cnn"}}
    results = []
    for i, (trial, variant) in enumerate(variants.items()):
        params = {"method": encode_choice(variant)}
        for epoch in (1, 2, 3):  # epoch 2 is the best one
            result = {"epoch": epoch}
            for s in (0, 1):
                result[f"dev_accuracy/seed_{s}"] = 0.5 + 0.1 * i + 0.01 * s + (0.05 if epoch == 2 else 0.0)
            tracker.log_result(trial, config_id(params), params, result, [0, 1], variant["strategy"])
        tracker.end_trial(trial, "completed")
        results += [SeedResult(config_id(params), trial, s, result[f"dev_accuracy/seed_{s}"], params, "completed")
                    for s in (0, 1)]
    summary = report.aggregate(results, "accuracy")
    tracker.log_aggregate(summary, report.write_artifacts(summary, tmp_path / f"agg-{sweep}"))
    tracker.finish()


def test_cli_report_combines_sweeps_writes_and_logs_paper_outputs(tmp_path, monkeypatch, capsys):
    from mlflow.tracking import MlflowClient

    from ipt_ray.cli import main

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _log_sweep(uri, "sweep-cb", "cb", tmp_path)
    _log_sweep(uri, "sweep-rte", "rte", tmp_path)
    out = tmp_path / "report"
    assert main(["report", "sweep-cb", "sweep-rte", "--tracking-uri", uri, "--experiment", "ipt-paper-test",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| method | paper row | CB | CB paper | RTE | RTE paper | avg |" in printed
    md = (out / "paper.md").read_text()
    assert ("| PT + Encoder IPT (cnn) | T2: Prompt Tuning + Encoder IPT (CNN) | **60.5 ± 0.7** | 82.1 [a,b,c] | "
            "**60.5 ± 0.7** | 56.0 [a,b,c] | **60.5** |") in md  # last epoch; the IPT paper's Table 2 beside it
    assert "[a] backbone: ours minilm-l6; the paper roberta-large." in md
    assert {p.name for p in out.iterdir()} >= {"results.csv", "results.md", "results.png", "paper.md", "paper.csv"}
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("ipt-paper-test")
    for sweep in ("sweep-cb", "sweep-rte"):
        agg = client.search_runs([exp.experiment_id],
                                 f"tags.`ipt.sweep_id` = '{sweep}' and tags.`ipt.kind` = 'aggregate'")[0]
        logged = {a.path for a in client.list_artifacts(agg.info.run_id, "paper")}
        assert logged == {"paper/paper.md", "paper/paper.csv", "paper/significance.md"}
    # --epoch best: each config read at its best epoch by seed mean (epoch 2: +5 points)
    assert main(["report", "sweep-cb", "--tracking-uri", uri, "--experiment", "ipt-paper-test", "--epoch", "best",
                 "--paper", "--no-log"]) == 0
    printed = capsys.readouterr().out
    assert "| PT + Encoder IPT (cnn) | T2: Prompt Tuning + Encoder IPT (CNN) | **65.5 ± 0.7** |" in printed
    assert "best seed mean" in printed and "which also chose the epoch and configuration" in printed
    assert main(["report", "sweep-cb", "no-such-sweep", "--tracking-uri", uri, "--experiment", "ipt-paper-test"]) == 2


# ---------------------------------------------------------------- experiment files


def _data_dir_absent(path: Path) -> str | None:
    data_dir = (yaml.safe_load(path.read_text()).get("task") or {}).get("data_dir")
    if data_dir and not Path(data_dir).expanduser().is_dir() and not (path.parent / data_dir).is_dir():
        return data_dir
    return None


def grid_points(path: Path):
    """Every config a grid sweep of ``path`` runs (choice values crossed; ranges at their ends)."""
    config = load_config(path)
    space = config.sweep.search_space
    keys = list(space)
    values = [d.values if d.type == "choice" else [d.low, d.high] for d in space.values()]
    for combo in itertools.product(*values):
        point = {k: encode_choice(int(v) if space[k].type == "int" else v) for k, v in zip(keys, combo)}
        yield config.with_overrides(decode_params(point))


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: str(p.relative_to(ROOT / "experiments")))
def test_every_experiment_yaml_validates_at_every_grid_point(path):
    absent = _data_dir_absent(path)
    if absent:
        pytest.skip(f"task.data_dir {absent} (the benchmark copy in ../shared/data) is absent")
    assert list(grid_points(path)) or not load_config(path).sweep.search_space


@pytest.mark.parametrize("path", PAPER_FILES, ids=lambda p: p.name)
def test_paper_files_are_gpu_scale(path):
    config = load_config(path)
    assert config.backbone.name == "roberta-large"
    assert (config.cluster.num_workers, config.cluster.use_gpu) == (1, True)
    # five seeds: trained together in a trial, or (few-shot, Table 3) the five data seeds, one per trial
    seeds = config.sweep.few_shot.data_seeds if config.sweep.few_shot is not None else config.train.seeds
    assert config.train.execution == "batched" and len(seeds) == 5
    assert config.sweep.searcher == "grid"
    for point in grid_points(path):
        expected = "classifier" if point.method.strategy == "fine_tuning" else "verbalizer"
        assert point.method.head == expected, (path.name, point.method)
    assert (ROOT / "experiments" / "cpu" / path.name).is_file(), f"{path.name} has no CPU twin"


@pytest.mark.parametrize("path", CPU_FILES, ids=lambda p: p.name)
def test_cpu_twins_are_cpu_scale_and_state_their_wall_time(path):
    config = load_config(path) if not _data_dir_absent(path) else None
    text = path.read_text()
    assert "Estimated wall time" in text
    if config is not None:
        assert config.backbone.name == "minilm-l6" and config.cluster.num_workers == 0
        assert config.method.head == "classifier" and config.train.execution in ("auto", "sequential")


def test_cpu_table2_cb_rte_is_the_requested_grid():
    points = list(grid_points(ROOT / "experiments" / "cpu" / "table2-cb-rte.yaml"))
    finetune = list(grid_points(ROOT / "experiments" / "cpu" / "table2-cb-rte-finetune.yaml"))
    labels = {(paper.method_label(p.method.model_dump()), p.task.name) for p in points + finetune}
    methods = {m for m, _ in labels}
    assert methods == {"Fine-tuning", "Prompt Tuning", "Prefix Tuning", "Structured PT", "PT + Random IPT",
                       "PT + Pretrained IPT", "PT + Encoder IPT (cnn)", "PT + Encoder IPT (rnn)",
                       "PT + Encoder IPT (mlp)", "Prefix + Random IPT", "Prefix + Pretrained IPT"}
    assert len(labels) == 11 * 2 == len(points) + len(finetune)
    assert all(p.train.seeds == [0, 1, 2, 3, 4] for p in points + finetune)
    rte = next(p for p in points if p.task.name == "rte")
    assert rte.task.max_train_samples == 250 and rte.train.epochs == 3


def _rates_printed_in_table6() -> list[float]:
    """Table 6's rates as the paper prints them in its columns (``BoolQ@0.2%``), as fractions."""
    import csv
    from importlib import resources

    with resources.files("ipt_ray.report").joinpath("published_data/ipt-published.csv").open() as fh:
        columns = {row["dataset"] for row in csv.DictReader(fh) if row["table"] == "6"}
    return sorted(round(float(c.split("@")[1].rstrip("%")) / 100, 6) for c in columns)


@pytest.mark.parametrize("folder", ["paper", "cpu"])
def test_grids_are_the_papers(folder):
    """Table 6: the printed rates x cnn/rnn/mlp on Prompt Tuning, BoolQ; Figure 5: the printed lengths x
    Pretrained IPT and its two bases; Table 5: its three rows on Prefix Tuning, the hard-prompt row with the
    paper's words per task."""
    base = ROOT / "experiments" / folder
    table6 = list(grid_points(base / "table6-seq-util-rate.yaml"))
    assert sorted({p.method.seq_util_rate for p in table6}) == _rates_printed_in_table6()
    assert {p.method.encoder for p in table6} == {"cnn", "rnn", "mlp"} and len(table6) == 24
    assert {(p.method.strategy, p.method.injection) for p in table6} == {("encoder_ipt", "input")}
    assert all(p.task.name.startswith("boolq") for p in table6)
    assert folder == "cpu" or all(p.method.prompt_length == 100 for p in table6)

    figure5 = list(grid_points(base / "figure5-prompt-length.yaml"))
    assert sorted({p.method.prompt_length for p in figure5}) == [5, 10, 16, 32, 64, 100, 120]
    assert {paper.method_label(p.method.model_dump()) for p in figure5} == {
        "Prompt Tuning", "PT + Pretrained IPT", "Prefix Tuning", "Prefix + Pretrained IPT"}

    table5 = list(grid_points(base / "table5-classification.yaml"))
    rows = {(paper.method_label(p.method.model_dump()), p.task.name, p.method.hard_prompt) for p in table5}
    words = {"ag_news": "Human Activities", "sst2": "Culture and the Arts", "imdb": "Culture and the Arts"}
    assert {r for r in rows if r[2]} == {("Prefix + Random IPT + hard prompts", t, words[t]) for t in
                                         {p.task.name for p in table5}}
    assert {r[0] for r in rows} == {"Prefix Tuning", "Prefix + Random IPT", "Prefix + Random IPT + hard prompts",
                                    "Prefix + Pretrained IPT"}
    assert all(p.method.prefix_projection == "none" for p in table5 + figure5 if p.method.strategy == "prompt_tuning"
               and p.method.injection == "prefix")


# ---------------------------------------------------------------- quoted numbers


def test_other_papers_numbers_name_their_source_and_never_an_ipt_label():
    labels = {paper.method_label({"strategy": s, "injection": i, "encoder": e}) for s, i, e in itertools.product(
        ["fine_tuning", "prompt_tuning", "ppt", "structured", "random_ipt", "pretrained_ipt", "encoder_ipt"],
        ["input", "prefix"], ["cnn", "rnn", "mlp"])}
    for v in paper.OTHER_PUBLISHED:
        source = paper.SOURCES[v.source]
        assert source.citation.strip() and source.url.strip() and source.note.strip(), v.source
        assert v.name not in labels and v.task in paper.TASK_ORDER and v.setting in ("full", "few-shot")
        assert v.metric in ("accuracy", "f1a", "em") and 0.0 < v.value <= 100.0
    keys = [(v.name, v.setting, v.task, v.metric) for v in paper.OTHER_PUBLISHED]
    assert len(keys) == len(set(keys))
    with pytest.raises(TypeError):
        paper.QuotedValue("P-tuning v2", "full", "cb", "accuracy", 50.0)  # type: ignore[call-arg]  # no source


def test_a_row_has_one_name_in_every_column():
    # two Structured PT variants on CB, one on RTE: the RTE cell still sits in the labelled row
    results = (fake(cfg("cb", "structured", hypernetwork="linear"), [0.5])
               + fake(cfg("cb", "structured", hypernetwork="mlp"), [0.6])
               + fake(cfg("rte", "structured", hypernetwork="mlp"), [0.7]))
    table = paper.build_table(aggregate(results, "accuracy"))
    assert table.methods == ["Structured PT [hypernetwork=linear]", "Structured PT [hypernetwork=mlp]"]
    assert table.cell("Structured PT [hypernetwork=mlp]", "rte").mean == 0.7


def test_significance_compares_each_ipt_variant_with_its_base_method():
    from scipy import stats

    pt, ipt = [0.60, 0.62, 0.61, 0.63, 0.59], [0.70, 0.72, 0.69, 0.71, 0.73]
    prefix, prefix_ipt = [0.65, 0.66, 0.64, 0.65, 0.67], [0.64, 0.67, 0.66, 0.65, 0.65]
    results = (fake(cfg("cb", "prompt_tuning"), pt) + fake(cfg("cb", "random_ipt"), ipt)
               + fake(cfg("cb", "prompt_tuning", injection="prefix"), prefix)
               + fake(cfg("cb", "random_ipt", injection="prefix"), prefix_ipt))
    table = paper.build_table(aggregate(results, "accuracy"))
    rows = {(r["method"], r["task"]): r for r in paper.significance(table)}
    assert set(rows) == {("PT + Random IPT", "cb"), ("Prefix + Random IPT", "cb")}
    pt_row = rows[("PT + Random IPT", "cb")]
    expected = stats.ttest_ind(ipt, pt, equal_var=False)
    assert pt_row["base"] == "Prompt Tuning" and pt_row["p"] == pytest.approx(expected.pvalue)
    assert pt_row["delta"] == pytest.approx(sum(ipt) / 5 - sum(pt) / 5)
    assert rows[("Prefix + Random IPT", "cb")]["base"] == "Prefix Tuning"
    md = paper.significance_markdown(table)
    assert "| PT + Random IPT | Prompt Tuning | CB | dev | +10.0 |" in md and "better" in md
    assert "no significant difference" in md


def test_a_base_not_varied_along_the_curve_is_the_base_at_every_rate():
    """Table 6: Encoder IPT at each sequence utilisation rate against the one Prompt Tuning run of its base file."""
    pt, low, high = [0.60, 0.62, 0.61, 0.63, 0.59], [0.61, 0.60, 0.62, 0.61, 0.60], [0.70, 0.72, 0.69, 0.71, 0.73]
    results = (fake(cfg("boolq", "prompt_tuning"), pt)
               + fake(cfg("boolq", "encoder_ipt", encoder="cnn", seq_util_rate=0.05), low)
               + fake(cfg("boolq", "encoder_ipt", encoder="cnn", seq_util_rate=0.3), high))
    curve = paper.build_table(aggregate(results, "accuracy"), x_key="method.seq_util_rate")
    rows = {r["x"]: r for r in paper.significance(curve)}
    assert set(rows) == {0.05, 0.3} and {r["base"] for r in rows.values()} == {"Prompt Tuning"}
    assert rows[0.3]["delta"] == pytest.approx(sum(high) / 5 - sum(pt) / 5) and rows[0.3]["p"] < 0.001
    assert rows[0.05]["p"] > 0.5
