"""Is a method better than the one it builds on? Welch's t-test over seeds, per task.

Each row is tested against its strategy's base (``StrategySpec.base``, same injection: ``PT + Random IPT``
against ``Prompt Tuning``, ``Prefix + Random IPT`` against ``Prefix Tuning``); a strategy without a base
is not tested. Seeds are independent runs (seed s of two methods shares nothing but the number), so the
test is unpaired, with unequal variances. Where both cells have a test split the test compares test
values: dev chose each cell's configuration and epoch, so its dev values are the winners of that choice
and the test values are the number the table reports.
"""

from __future__ import annotations

from statistics import fmean
from typing import Any, Sequence

from ipt_ray.report.labels import task_name
from ipt_ray.report.table import Cell, PaperTable
from ipt_ray.results import display_str, markdown_lines


def welch(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Welch's t and two-sided p of seed values ``a`` against ``b``; (NaN, 1 or 0) when neither varies
    (the test is undefined: equal constants do not differ, different ones do)."""
    from scipy import stats  # heavy: only for significance tests

    if len(set(a)) == 1 and len(set(b)) == 1:
        return float("nan"), 1.0 if a[0] == b[0] else 0.0
    t, p = stats.ttest_ind(a, b, equal_var=False)
    return float(t), float(p)


def significance(table: PaperTable) -> list[dict[str, Any]]:
    """Each method with a base (``table.bases``) against that base, per task (and per ``x`` value of a plot
    table: at each prompt length, rate, ...; see :func:`base_cell`) where both have >= 2 seeds."""
    xs = sorted({k[2] for k in table.cells}, key=lambda x: (str(type(x)), x)) if table.x_key else [None]
    rows = []
    for method in table.methods:
        base = table.bases.get(method)
        if base is None:
            continue
        for task in table.tasks:
            for x in xs:
                a, b = table.cell(method, task, x), base_cell(table, base, task, x)
                if a is None or b is None:
                    continue
                split = "test" if len(a.test_values) >= 2 and len(b.test_values) >= 2 else "dev"
                va, vb = list(split_values(a, split).values()), list(split_values(b, split).values())
                if len(va) < 2 or len(vb) < 2:
                    continue
                t, p = welch(va, vb)
                delta = fmean(va) - fmean(vb)
                rows.append({"method": method, "base": base, "task": task, "x": x, "split": split, "delta": delta,
                             "t": t, "p": p, "n": (len(va), len(vb))})
    return rows


def split_values(cell: Cell, split: str) -> dict[int, float]:
    """Seed -> value of ``cell`` on ``split`` ('dev': what selected; 'test': reported only)."""
    return cell.test_values if split == "test" else cell.values


def base_cell(table: PaperTable, base: str, task: str, x: Any) -> Cell | None:
    """The base's cell at ``x``; where the sweeps did not vary the base along the table's key (Table 6: Prompt
    Tuning has no sequence utilisation rate, its one run is the base of every rate), its only cell."""
    cell = table.cell(base, task, x)
    if cell is not None or table.x_key is None:
        return cell
    along = [c for (m, t, _), c in table.cells.items() if m == base and t == task]
    return along[0] if len(along) == 1 else None


def significance_markdown(table: PaperTable, alpha: float = 0.05) -> str:
    """:func:`significance` as a Markdown table with a verdict at ``alpha``; empty when nothing is tested."""
    rows = significance(table)
    if not rows:
        return ""
    x = [table.x_key] if table.x_key else []
    header = ["IPT variant", "vs", "task", *x, "split", "difference (points)", "Welch t", "p", "at 5%"]
    cells = []
    for r in rows:
        scale = 100.0 if table.pct.get(r["task"]) else 1.0
        verdict = ("better" if r["delta"] > 0 else "worse") if r["p"] < alpha else "no significant difference"
        cells.append([r["method"], r["base"], task_name(r["task"]), *([display_str(r["x"])] if x else []), r["split"],
                      f"{scale * r['delta']:+.1f}", f"{r['t']:.2f}", f"{r['p']:.3f}", verdict])
    lines = markdown_lines(header, cells)
    n = {x for r in rows for x in r["n"]}
    lines += ["", f"- Welch's two-sample t-test over seeds (n = {', '.join(map(str, sorted(n)))} per method), "
              "two-sided; no correction for multiple comparisons. Split: test where both methods have one (the "
              "number the table reports, at the dev-selected configuration and epoch), else dev."]
    return "\n".join(lines) + "\n"
