"""The IPT paper's printed numbers: package data, typed records, the mapping to our configs, and the
paper column of ``report --paper`` (its row label, its value, how our run differs)."""

from __future__ import annotations

import csv
import fnmatch
import json
import tomllib
from importlib import resources
from pathlib import Path

import pytest

from ipt_ray.report import paper
from ipt_ray.report.published import PUBLISHED_CSV
from ipt_ray.results import SeedResult, aggregate, config_id

ROOT = Path(__file__).resolve().parents[3]
SHARED_CSV = ROOT.parent / "shared" / "paper" / "ipt-published.csv"


def fake(params: dict, dev, test=None) -> list[SeedResult]:
    cid = config_id(params)
    test = test or [float("nan")] * len(dev)
    return [SeedResult(cid, f"t-{cid}", s, d, params, "completed", test=t) for s, (d, t) in enumerate(zip(dev, test))]


def cfg(task: str, strategy: str, **more) -> dict:
    """Trial params: a ``method`` section dimension, ``task.name``, and any dotted params."""
    dotted = {k: more.pop(k) for k in list(more) if "." in k}
    return {"method": json.dumps({"strategy": strategy, **more}, sort_keys=True), "task.name": task, **dotted}


def config_of(v: paper.PublishedValue) -> dict:
    """A measured config that is the paper's cell ``v``, as the mapping rule reads configs."""
    out = {f"method.{k}": val for k, val in v.identity.method(v.task).items()} | {"task.name": v.task}
    if v.few_shot_k is not None:
        out["task.few_shot_k"] = v.few_shot_k
    if v.seq_util_rate is not None:
        out["method.seq_util_rate"] = v.seq_util_rate
    return out


# ---------------------------------------------------------------- package data


def test_packaged_csv_loads_every_printed_cell_as_a_typed_record():
    values = paper.published_values()
    assert len(values) == 117
    assert {t: sum(v.table == t for v in values) for t in (2, 3, 5, 6)} == {2: 56, 3: 28, 5: 9, 6: 24}
    first = values[0]
    assert (first.table, first.row, first.column, first.task, first.value, first.printed) == (
        2, "Prompt Tuning", "BoolQ", "boolq", 62.0, "62")
    cb = next(v for v in values if v.where == "Table 2, Prefix Tuning, CB")
    assert cb.printed == "100.0" and cb.value == 100.0  # exactly as printed
    assert all(v.backbone == "roberta-large" for v in values)
    few = [v for v in values if v.table == 3]
    assert all(v.setting == "few-shot" and v.few_shot_k == 32 and v.epochs == (100, 800) for v in few)
    assert all("test = the original validation set" in v.split for v in few)
    full = [v for v in values if v.table != 3]
    assert all(v.setting == "full" and v.few_shot_k is None and v.epochs == (20, 100) for v in full)
    assert all(v.split.startswith("the validation set") for v in full)
    assert {v.metric for v in values if v.task == "multirc"} == {None}  # the paper does not state it
    assert sorted({v.seq_util_rate for v in values if v.table == 6}) == pytest.approx(
        [0.002, 0.013, 0.03, 0.05, 0.10, 0.21, 0.26, 0.30])


def test_packaged_csv_is_the_shared_copy_byte_for_byte():
    if not SHARED_CSV.is_file():
        pytest.skip("../shared/paper is not beside the checkout")
    packaged = resources.files("ipt_ray.report").joinpath(PUBLISHED_CSV).read_bytes()
    assert packaged == SHARED_CSV.read_bytes()
    readme = resources.files("ipt_ray.report").joinpath("published_data/README.md").read_text()
    assert "Jiang et al. 2022, Instance-wise Prompt Tuning for Pretrained Language Models, arXiv:2206.01958" in readme


def test_the_wheel_declares_the_csv_as_package_data():
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["ipt_ray"]
    for name in ("report/published_data/ipt-published.csv", "report/published_data/README.md"):
        assert any(fnmatch.fnmatch(name, p) for p in patterns), name


# ---------------------------------------------------------------- rows <-> identities


@pytest.mark.parametrize("table, row, identity, label", [
    (2, "Prompt Tuning + Random IPT", paper.MethodIdentity("random_ipt", "input"), "PT + Random IPT"),
    (2, "Prefix Tuning + Encoder IPT (CNN)", paper.MethodIdentity("encoder_ipt", "prefix", "cnn"),
     "Prefix + Encoder IPT (cnn)"),
    (2, "Fine-tuning", paper.MethodIdentity("fine_tuning"), "Fine-tuning"),
    (3, "finetuning", paper.MethodIdentity("fine_tuning"), "Fine-tuning"),
    (2, "PPT", paper.MethodIdentity("ppt", "input"), "PPT"),
    (3, "Prefix Tuning", paper.MethodIdentity("prompt_tuning", "prefix"), "Prefix Tuning"),
    (5, "Random IPT", paper.MethodIdentity("random_ipt", "prefix"), "Prefix + Random IPT"),
    (5, "Pretrained IPT", paper.MethodIdentity("pretrained_ipt", "prefix"), "Prefix + Pretrained IPT"),
    (5, "Random IPT + hard prompts", paper.MethodIdentity("random_ipt", "prefix", hard_prompt=True),
     "Prefix + Random IPT + hard prompts"),
    (6, "Encoder IPT (CNN)", paper.MethodIdentity("encoder_ipt", "input", "cnn"), "PT + Encoder IPT (cnn)"),
])
def test_paper_rows_map_to_our_identities_and_labels(table, row, identity, label):
    assert paper.paper_identity(table, row) == identity
    assert identity.label == label
    with pytest.raises(ValueError, match="no mapping"):
        paper.paper_identity(2, "Random IPT")  # Table 2 always names its base


def test_every_printed_cell_maps_to_one_identity_and_back():
    keys = set()
    for v in paper.published_values():
        config = config_of(v)
        assert paper.paper_table_of(config) == v.table, v.where
        assert paper.paper_value(config, "f1a" if v.task == "multirc" else "accuracy") is v, v.where
        identity = paper.MethodIdentity.of(paper.effective_method(config))
        assert identity == v.identity
        keys.add((v.table, identity, v.task, v.seq_util_rate))
    assert len(keys) == 117  # no two cells share an identity


def test_which_table_a_config_is_and_what_has_no_paper_value():
    prefix_ipt = {"method.strategy": "random_ipt", "method.injection": "prefix"}
    assert paper.paper_table_of({**prefix_ipt, "task.name": "cb", "task.few_shot_k": 16}) == 3
    assert paper.paper_table_of({**prefix_ipt, "task.name": "sst2"}) == 5
    assert paper.paper_table_of({**prefix_ipt, "task.name": "rte"}) == 2
    encoder = {"method.strategy": "encoder_ipt", "task.name": "boolq"}
    assert paper.paper_table_of({**encoder, "method.seq_util_rate": 0.21}) == 6
    assert paper.paper_table_of(encoder) == 2  # all content tokens (the default): Table 2
    assert paper.paper_value({**encoder, "method.seq_util_rate": 0.21}).where == "Table 6, Encoder IPT (CNN), BoolQ@21%"
    assert paper.paper_value({**encoder, "method.seq_util_rate": 0.5}) is None  # not on Table 6's grid
    assert paper.paper_value({**prefix_ipt, "task.name": "sst2", "task.few_shot_k": 16}) is None  # no such row
    assert paper.paper_value({"method.strategy": "prompt_tuning", "task.name": "sst2"}) is None
    # random_ipt from the backbone's embeddings is the initialisation ablation, not the paper's Random IPT
    assert paper.paper_value({**prefix_ipt, "task.name": "rte"}).value == 88.8
    assert paper.paper_value({**prefix_ipt, "task.name": "rte", "method.table_init": "backbone"}) is None
    assert paper.paper_value({**prefix_ipt, "task.name": "rte"}, "loss") is None
    assert paper.paper_value({"method.strategy": "gone_plugin", "task.name": "rte"}) is None
    assert paper.paper_value({"method.strategy": "structured", "task.name": "rte"}) is None


def test_own_data_drawn_from_a_paper_task_gets_that_tasks_paper_value_and_says_so():
    """AG News' test split read as own data (``task.dataset.stands_for: ag_news``): Table 5's AG News cells."""
    from ipt_ray.config import TaskConfig
    from ipt_ray.results import SweepContext

    base = {"task": {"name": "agnews-test", "protocol": "heldout", "dataset": {
        "format": "csv", "train": "test.csv", "text_fields": ["title"], "label_field": "label", "stands_for": "ag_news"}}}
    assert TaskConfig(**base["task"]).dataset.stands_for == "ag_news"
    with pytest.raises(ValueError, match="(?s)dataset.stands_for.*'cb'.*'ag_news'"):  # names the allowed values
        TaskConfig(**{**base["task"], "dataset": {**base["task"]["dataset"], "stands_for": "agnews"}})
    shared = SweepContext("s", "sw", {"task": "agnews-test"}, base).shared_params()
    assert shared["task.dataset.stands_for"] == "ag_news" and shared["task.name"] == "agnews-test"
    params = {**shared, "method": json.dumps({"strategy": "random_ipt", "injection": "prefix"}),
              "backbone.name": "minilm-l6"}
    assert paper.paper_value(params).where == "Table 5, Random IPT, AGNews"
    assert paper.paper_value({**params, "task.dataset.stands_for": None}) is None  # no paper task of that name
    md = paper.to_markdown(paper.build_table(aggregate(fake(params, [0.80, 0.82]), "accuracy")))
    assert "| 86.2 [a,b,c,d] |" in md
    assert "[b] data: ours own files 'agnews-test' drawn from ag_news; the paper the task's own splits." in md
    assert "[c] split: ours dev = a stratified part of train held out from training" in md


def test_hard_prompts_are_their_own_row():
    base = {"method.strategy": "random_ipt", "method.injection": "prefix", "task.name": "ag_news"}
    assert paper.paper_value(base).where == "Table 5, Random IPT, AGNews"
    assert paper.paper_value({**base, "method.hard_prompt": None}).row == "Random IPT"
    assert paper.paper_value({**base, "method.hard_prompt": " "}).row == "Random IPT"
    hard = paper.paper_value({**base, "method.hard_prompt": "Human Activities"})
    assert (hard.row, hard.printed) == ("Random IPT + hard prompts", "86.7")
    results = (fake(cfg("ag_news", "random_ipt", injection="prefix", **{"backbone.name": "roberta-large",
                                                                         "train.epochs": 30}), [0.85, 0.86])
               + fake(cfg("ag_news", "random_ipt", injection="prefix", hard_prompt="Sports",
                          **{"backbone.name": "roberta-large", "train.epochs": 30}), [0.86, 0.87]))
    table = paper.build_table(aggregate(results, "accuracy"))
    assert len(table.methods) == 2  # two rows: the hard prompt is never a hyper-parameter selected over
    md = paper.to_markdown(table)
    plain = next(line for line in md.splitlines() if "T5: Random IPT |" in line)
    assert plain.endswith("| 86.2 [a] |")  # roberta-large, 30 epochs: only the split is said
    with_hard = next(line for line in md.splitlines() if "T5: Random IPT + hard prompts" in line)
    assert with_hard.endswith("| 86.7 [a,b] |")
    assert "[b] hard prompt: ours 'Sports'; the paper 'Human Activities'." in md


# ---------------------------------------------------------------- report --paper


def test_few_shot_report_shows_table3_with_its_label_and_differences(tmp_path):
    results = []
    for fold in range(4):
        for strategy, dev, test in (("random_ipt", [0.70, 0.72], [0.60, 0.64]),
                                    ("prompt_tuning", [0.6, 0.6], [0.5, 0.5])):
            results += fake(cfg("cb", strategy, injection="prefix", **{
                "task.few_shot_k": 16, "task.cv_fold": fold, "backbone.name": "minilm-l6", "train.epochs": 5}),
                dev, test)
    table = paper.build_table(aggregate(results, "accuracy"))
    md = paper.to_markdown(table)
    lines = md.splitlines()
    assert lines[0] == "| method | paper row | CB dev | CB test | CB paper |"
    assert lines[2] == "| Prefix Tuning | T3: Prefix Tuning | 60.0 ± 0.0 | 50.0 ± 0.0 | 57.1 [a,b,c,d] |"
    assert lines[3] == ("| Prefix + Random IPT | T3: Prefix Tuning + Random IPT | **71.0 ± 1.4** | 62.0 ± 2.8 | "
                        "69.6 [a,b,c,d] |")
    assert "  - [a] backbone: ours minilm-l6; the paper roberta-large." in md
    assert "  - [b] split: ours test column = the original validation set, at the epoch and configuration chosen " \
           "on the K-shot dev; the paper (Table 3) test = the original validation set" in md
    assert "  - [c] epochs: ours 5; the paper 100-800 (few-shot, appendix A.3)." in md
    assert "  - [d] few-shot K: ours 16; the paper K=32." in md
    assert "Other published numbers" not in md  # P-tuning v2's are full-data numbers
    rows = list(csv.DictReader(paper.to_csv(table, tmp_path / "paper.csv").open()))
    ipt = next(r for r in rows if r["method"] == "Prefix + Random IPT")
    assert (ipt["paper_table"], ipt["paper_row"], ipt["paper_column"], ipt["paper_value"]) == (
        "3", "Prefix Tuning + Random IPT", "CB", "69.6")
    assert ipt["paper_differs"].split(" | ")[-1] == "few-shot K: ours 16; paper K=32"


def test_paper_grid_run_on_the_papers_backbone_is_marked_only_by_its_split():
    params = {"backbone.name": "roberta-large", "train.epochs": 50, "task.protocol": "heldout"}
    results = fake(cfg("rte", "prompt_tuning", injection="prefix", **params), [0.80, 0.82], [0.83, 0.85])
    md = paper.to_markdown(paper.build_table(aggregate(results, "accuracy")))
    assert "| Prefix Tuning | T2: Prefix Tuning | **81.0 ± 1.4** | 84.0 ± 1.4 | 84.8 [a] |" in md
    assert "[a] split: ours test column = the validation set, at the epoch and configuration chosen on a dev " \
           "set held out from train (task.protocol heldout)" in md
    assert "backbone:" not in md and "epochs:" not in md


def test_table6_rates_are_paper_values_in_the_curve_csv(tmp_path):
    results = []
    for rate, acc in ((0.002, 0.60), (0.3, 0.64)):
        for encoder in ("cnn", "rnn"):
            results += fake(cfg("boolq", "encoder_ipt", encoder=encoder, prompt_length=100,
                                **{"method.seq_util_rate": rate, "backbone.name": "minilm-l6", "train.epochs": 20}),
                            [acc, acc + 0.01])
    summary = aggregate(results, "accuracy")
    paths = paper.write_artifacts(summary, tmp_path)
    rows = {(r["method"], r["method.seq_util_rate"]): r for r in csv.DictReader(paths["seq_util_rate_csv"].open())}
    assert rows[("PT + Encoder IPT (cnn)", "0.002")]["paper_column"] == "BoolQ@0.2%"
    assert rows[("PT + Encoder IPT (cnn)", "0.002")]["paper_value"] == "61.2"
    assert rows[("PT + Encoder IPT (rnn)", "0.3")]["paper_value"] == "64"
    assert rows[("PT + Encoder IPT (rnn)", "0.3")]["paper_row"] == "Encoder IPT (RNN)"
    # the table keeps each encoder's best rate, beside the paper's value at that rate
    md = paths["paper_md"].read_text()
    assert "| PT + Encoder IPT (cnn) | T6: Encoder IPT (CNN) | **64.5 ± 0.7** | 64.6 [a,b] |" in md
    # Figure 5 printed no numbers: a prompt-length curve has no paper values (not Table 2's best beside each point)
    lengths = [r for k in (16, 32) for r in fake(cfg("cb", "prompt_tuning", prompt_length=k), [0.6, 0.7])]
    curve = paper.build_table(aggregate(lengths, "accuracy"), x_key="method.prompt_length")
    assert paper.compare(curve) == {} and paper.compare(paper.build_table(aggregate(lengths, "accuracy")))


def test_no_other_papers_number_is_in_the_paper_column(tmp_path):
    results = (fake(cfg("rte", "prompt_tuning", injection="prefix", **{"backbone.name": "minilm-l6"}), [0.6, 0.62])
               + fake(cfg("boolq", "prompt_tuning", injection="prefix", **{"backbone.name": "minilm-l6"}), [0.6, 0.6]))
    table = paper.build_table(aggregate(results, "accuracy"))
    md = paper.to_markdown(table)
    body, other = md.split("Other published numbers")
    row = next(line for line in body.splitlines() if line.startswith("| Prefix Tuning |"))
    assert row == ("| Prefix Tuning | T2: Prefix Tuning | **60.0 ± 0.0** | 85 [a,b,c] | **61.0 ± 1.4** | "
                   "84.8 [a,b,c] | **60.5** |")
    assert "84.0" not in body and "86.6" not in body and "P-tuning" not in body and "P-Tuning" not in body
    assert "- P-tuning v2 BoolQ 84.0, P-tuning v2 RTE 86.6 (Liu et al. 2022" in other
    rows = list(csv.DictReader(paper.to_csv(table, tmp_path / "paper.csv").open()))
    assert [r["paper_value"] for r in rows] == ["85", "84.8"]
    assert all(r["paper_source"] == paper.PAPER for r in rows)


def test_a_hard_prompt_mapping_per_task_is_the_hard_prompt_row():
    """Table 5 swept over tasks: ``method.hard_prompt`` as {task: text} is the "+ hard prompts" row too."""
    from ipt_ray.report.published import MethodIdentity

    per_task = MethodIdentity.of({"strategy": "random_ipt", "injection": "prefix",
                                  "hard_prompt": {"sst2": "Culture and the Arts"}})
    text = MethodIdentity.of({"strategy": "random_ipt", "injection": "prefix", "hard_prompt": "Culture and the Arts"})
    plain = MethodIdentity.of({"strategy": "random_ipt", "injection": "prefix", "hard_prompt": None})
    assert per_task == text and per_task.hard_prompt and not plain.hard_prompt


def test_a_hard_prompt_mapping_in_a_method_choice_is_its_own_row_not_a_hyper_parameter():
    """Table 5 swept as one grid: the method choice with ``hard_prompt: {task: words}`` is the hard-prompt row
    (found by a CPU-twin run of 2026-12-03, where the mapping's entries had become hyper-parameters)."""
    from ipt_ray.results import expand_sections

    words = {"ag_news": "Human Activities", "sst2": "Culture and the Arts"}
    plain = {"strategy": "random_ipt", "injection": "prefix", "table_init": "random"}
    assert expand_sections({"method": json.dumps({**plain, "hard_prompt": words})})["method.hard_prompt"] == words
    results = [SeedResult(config_id(params), f"t{i}", seed, 0.6 + 0.01 * seed + 0.1 * i, params, "completed")
               for i, params in enumerate([{"method": json.dumps(plain), "task.name": "sst2"},
                                           {"method": json.dumps({**plain, "hard_prompt": words}), "task.name": "sst2"}])
               for seed in range(3)]
    table = paper.build_table(aggregate(results, "accuracy", "max"))
    assert table.methods == ["Prefix + Random IPT", "Prefix + Random IPT + hard prompts"]
    assert not table.selected_over
