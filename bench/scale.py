"""The orchestration at scale: sweeps of 50 to 500 trials x 5 seeds on a simulated Ray cluster.

Each sweep is the real command, ``ipt-ray sweep FILE --set cluster.address=...``, run as its own process
(so its CPU time and memory are the driver's alone) against:

- a ``ray.cluster_utils.Cluster`` of ``--nodes`` nodes (default 4), each with 1 CPU and one
  ``trial_slot``, started and shut down by this benchmark;
- a real ``mlflow server`` on 127.0.0.1 (sqlite store, proxied artifacts) with ``--server-workers``
  worker processes (default 4, MLflow's own default), stopped by pid at the end;
- a cheap but real trainable: a tiny random BERT (hidden 32, 2 layers), CB's 250 training examples
  (``--train-samples``), 2 epochs of 32 steps for each of 5 seeds (a few seconds per trial here),
  evaluated on 8 dev examples, checkpointed, adapters saved and uploaded.

Reported per sweep size: trials per second, the driver's CPU seconds (total and per trial) and peak
RSS (plus RSS at each quarter of the run, the RSS each further ended trial adds, and what the end of
the run adds once the last trial has ended), MLflow requests per trial (the server's access log), wall /
ideal (ideal = the trials' own time summed / concurrent trials), the slot-seconds per trial beyond
the trials' own time, and whether MLflow is exact (1 parent,
trials x 5 children, 1 aggregate, one run per config and seed, each child's epochs exactly 1..2).
With ``--kill-at F`` the largest sweep's driver is SIGKILLed once a fraction F of its trials have
ended, then resumed with ``--resume``; MLflow must still be exact, with no epoch logged twice.

With ``--trials-per-run N`` each sweep runs as Tune runs of at most N trials (``sweep.trials_per_run``; default:
the product's, 250; 0: one Tune run whatever the size).

Usage: python -m bench.scale [--trials 50 500] [--nodes 4] [--kill-at 0.5] [--train-samples 250] [--server-workers 4]
       [--trials-per-run N] [--out bench/results/scale.md] [--render]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import yaml

from bench._driver import Driver, rss_by_run
from bench._results import row_variant, slot_overhead_s, write_results
from ipt_ray.config.sections import DEFAULT_TRIALS_PER_RUN
from ipt_ray.sweep.driver import code_version

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))  # the e2e tests' helpers: one way to start a tiny model and stop servers by pid
from servers import find_processes, mlflow_server  # noqa: E402
from tiny_models import make_tiny_backbone  # noqa: E402

SEEDS = [0, 1, 2, 3, 4]
EPOCHS = 2
SERVER_WORKERS = 4  # mlflow server's own default: what a tracking server runs unless told otherwise
TRAIN_SAMPLES = 250  # CB training examples per seed and epoch (batch 8; CB has 250): how long a trial trains
SUMMARY_LINE = re.compile(r"sweep \S+: (\d+) configs x \d+ seeds in (\d+)s \(sum of trial times (\d+)s\)")
ACCESS_LINE = re.compile(r'"(GET|POST|PUT|PATCH|DELETE) /')


# ---------------------------------------------------------------- the cluster and the sweep file


@contextmanager
def simulated_cluster(nodes: int) -> Iterator[Any]:
    """``nodes`` Ray nodes on this machine (1 CPU and 1 trial_slot each); every process stopped at the end."""
    from ray.cluster_utils import Cluster

    node_args = {"num_cpus": 1, "resources": {"trial_slot": 1}}
    cluster = Cluster(initialize_head=True, connect=False, head_node_args=node_args, shutdown_at_exit=False)
    try:
        for _ in range(nodes - 1):
            cluster.add_node(**node_args)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        cluster.shutdown()


def sweep_file(workdir: Path, backbone: Path, trials: int, uri: str, address: str, tag: str,
               train_samples: int = TRAIN_SAMPLES, trials_per_run: int | None = None,
               fresh_process_per_run: bool = True) -> Path:
    data = {
        "task": {"name": "cb", "max_train_samples": train_samples, "max_eval_samples": 8, "max_length": 32},
        "backbone": {"name": str(backbone)},
        "method": {"strategy": "random_ipt", "prompt_length": 4},
        "train": {"epochs": EPOCHS, "batch_size": 8, "seeds": SEEDS, "output_dir": str(workdir / f"runs-{tag}"),
                  "progress": False},
        "sweep": {"num_samples": trials, "searcher": "optuna", "searcher_seed": 0, "name": f"scale-{tag}",
                  "search_space": {
                      "method.strategy": {"type": "choice", "values": ["prompt_tuning", "random_ipt"]},
                      "method.prompt_length": {"type": "choice", "values": [2, 4]},
                      "train.lr": {"type": "loguniform", "low": 1e-3, "high": 3e-2}},
                  "trials_per_run": trials_per_run or None,  # 0 / None: one Tune run
                  "fresh_process_per_run": fresh_process_per_run},
        "tracking": {"uri": uri, "experiment": f"scale-{tag}"},
        "cluster": {"address": address, "num_workers": 0, "cpus_per_trial": 1},
    }
    path = workdir / f"scale-{tag}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# ---------------------------------------------------------------- MLflow, read from the server's store


def store_query(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    """Read the server's sqlite store read-only (no schema migration races with the server)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        return conn.execute(sql, params).fetchall()


def exactness(db: Path, experiment: str, trials: int) -> dict[str, Any]:
    """Active runs by kind, (config, seed) pairs held twice, epochs logged twice, children whose epochs are
    not 1..N; with the deleted (retired: ``ipt_ray.tracking.orphans``) runs counted apart."""
    kinds = dict(store_query(db, """
        SELECT k.value, COUNT(*) FROM runs r JOIN experiments e ON r.experiment_id = e.experiment_id
        JOIN tags k ON k.run_uuid = r.run_uuid AND k.key = 'ipt.kind'
        WHERE e.name = ? AND r.lifecycle_stage = 'active' GROUP BY k.value""", (experiment,)))
    twice = store_query(db, """
        SELECT COUNT(*) FROM (SELECT c.value, s.value FROM runs r JOIN experiments e ON r.experiment_id = e.experiment_id
        JOIN tags k ON k.run_uuid = r.run_uuid AND k.key = 'ipt.kind' AND k.value = 'trial'
        JOIN tags c ON c.run_uuid = r.run_uuid AND c.key = 'ipt.config_id'
        JOIN tags s ON s.run_uuid = r.run_uuid AND s.key = 'ipt.seed'
        WHERE e.name = ? AND r.lifecycle_stage = 'active' GROUP BY c.value, s.value HAVING COUNT(*) > 1)""", (experiment,))[0][0]
    histories = store_query(db, """
        SELECT m.run_uuid, GROUP_CONCAT(m.step) FROM metrics m JOIN runs r ON r.run_uuid = m.run_uuid
        JOIN experiments e ON r.experiment_id = e.experiment_id
        WHERE e.name = ? AND r.lifecycle_stage = 'active' AND m.key = 'dev_accuracy' GROUP BY m.run_uuid""", (experiment,))
    retired = store_query(db, """
        SELECT COUNT(*) FROM runs r JOIN experiments e ON r.experiment_id = e.experiment_id
        JOIN tags k ON k.run_uuid = r.run_uuid AND k.key = 'ipt.status' AND k.value = 'orphaned'
        WHERE e.name = ? AND r.lifecycle_stage = 'deleted'""", (experiment,))[0][0]
    expected = list(range(1, EPOCHS + 1))
    epochs_twice = sum(len(steps.split(",")) != len(set(steps.split(","))) for _, steps in histories)
    wrong = sum(sorted(map(int, steps.split(","))) != expected for _, steps in histories)
    exact = (kinds == {"parent": 1, "trial": trials * len(SEEDS), "aggregate": 1} and twice == 0
             and epochs_twice == 0 and wrong == 0 and len(histories) == trials * len(SEEDS))
    return {"runs": kinds, "config_seed_twice": twice, "runs_with_an_epoch_twice": epochs_twice,
            "runs_without_epochs_1_to_n": wrong, "orphaned_runs_deleted": retired, "exact": exact}


def server_cpu_s(server: Any) -> float:
    """CPU seconds the MLflow server's processes have used so far (user + system)."""
    total = 0
    for pid in find_processes(str(server.root)):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
        except (OSError, IndexError, ValueError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


def access_lines(log: Path) -> int:
    try:
        return sum(1 for line in log.read_text(errors="replace").splitlines() if ACCESS_LINE.search(line))
    except OSError:
        return 0


# ---------------------------------------------------------------- one sweep size


def run_size(trials: int, server: Any, cluster: Any, backbone: Path, workdir: Path, kill_at: float | None,
             concurrency: int, train_samples: int = TRAIN_SAMPLES, trials_per_run: int | None = None,
             fresh_process_per_run: bool = True) -> dict[str, Any]:
    tag = f"{trials}" + ("-killed" if kill_at else "")
    path = sweep_file(workdir, backbone, trials, server.uri, cluster.address, tag, train_samples, trials_per_run,
                      fresh_process_per_run)
    db = server.root / "mlflow.db"
    requests_before, server_cpu_before = access_lines(server.log), server_cpu_s(server)
    legs = []
    driver = Driver(["sweep", str(path)], workdir / f"driver-{tag}.log")
    if kill_at:  # Tune's count (its console lines): MLflow may lag behind it by design (tracking.writer)
        while driver.proc.poll() is None and driver.ended < kill_at * trials:
            time.sleep(0.5)
        killed_after = driver.ended
        driver.kill()
        legs.append({**driver.wait(), "killed_after_trials": killed_after})
        driver = Driver(["sweep", str(path), "--resume"], workdir / f"driver-{tag}-resume.log")
    legs.append(driver.wait())
    log_text = driver.log.read_text(errors="replace")
    if legs[-1]["returncode"] != 0:
        raise RuntimeError(f"the sweep driver failed ({legs[-1]['returncode']}):\n{log_text[-4000:]}")
    summary = SUMMARY_LINE.search(log_text)
    configs, sweep_wall, trial_time = (int(x) for x in summary.groups())
    requests = access_lines(server.log) - requests_before
    server_cpu = server_cpu_s(server) - server_cpu_before
    ideal = trial_time / concurrency
    cpu = sum(leg["cpu_s"] for leg in legs)
    return {
        "trials": trials, "configs": configs, "killed_and_resumed": bool(kill_at), "train_samples": train_samples,
        "trials_per_run": trials_per_run if trials_per_run and trials_per_run < trials else None,
        # a split sweep's driver: a fresh process after each run (ipt-ray sweep's default) or one process
        "fresh_process_per_run": fresh_process_per_run if trials_per_run and trials_per_run < trials else None,
        "code": code_version(),  # the commit measured, "-dirty" with changes not committed
        "server_workers": server.workers,
        "killed_after_trials": legs[0].get("killed_after_trials") if kill_at else None,
        "sweep_wall_s": sweep_wall, "process_wall_s": round(sum(leg["process_wall_s"] for leg in legs), 1),
        "trial_time_s": trial_time, "ideal_s": round(ideal, 1),
        "wall_over_ideal": round(sweep_wall / ideal, 3) if not kill_at else None,
        "trials_per_s": round(trials / sweep_wall, 3) if not kill_at else None,
        "driver_cpu_s": round(cpu, 1), "driver_cpu_ms_per_trial": round(1000 * cpu / trials, 1),
        "driver_peak_rss_mb": round(max(leg["peak_rss_mb"] for leg in legs), 1),
        "driver_rss_quarters_mb": legs[-1]["rss_quarters_mb"],
        "driver_rss_kib_per_trial": legs[-1]["rss_kib_per_trial"],  # the resumed leg's, if killed
        "driver_rss_end_of_run_mb": legs[-1]["rss_end_of_run_mb"],
        "driver_rss_at_trial_quarters_mb": legs[-1]["rss_at_trial_quarters_mb"],
        # not for a resumed driver: its console counts the trials it ended, not the sweep's
        **{f"driver_rss_run_{key}_mb": value
           for key, value in rss_by_run(legs[-1]["samples"], trials, None if kill_at else trials_per_run).items()},
        "mlflow_requests": requests, "mlflow_requests_per_trial": round(requests / trials, 1),
        "mlflow_server_cpu_s": round(server_cpu, 1),
        **exactness(db, f"scale-{tag}", trials),
    }


# ---------------------------------------------------------------- report


def render(rows: list[dict[str, Any]], nodes: int) -> list[str]:
    samples = rows[0].get("train_samples", 16) if rows else TRAIN_SAMPLES
    workers = rows[0].get("server_workers", 1) if rows else SERVER_WORKERS
    lines = [
        f"`python -m bench.scale --train-samples {samples}`: `ipt-ray sweep` joining a `ray.cluster_utils.Cluster` of "
        f"{nodes} nodes (1 CPU and 1 `trial_slot` each, so {nodes} trials at a time) on this 2-core machine, logging to "
        f"`mlflow server --workers {workers}` on 127.0.0.1 (sqlite). Each trial: tiny BERT, 5 seeds x {EPOCHS} epochs x "
        f"{-(-samples // 8)} steps of 8 CB examples, dev scored, checkpointed, 5 adapters uploaded. Ideal = the trials' "
        f"own time (Tune's `time_total_s`) / {nodes}; overhead = (wall x {nodes} - own time) / trials.", "",
        "| trials | sweep wall (s) | ideal (s) | wall / ideal | overhead / trial (slot-s) | trials/s | driver CPU (s) "
        "| driver CPU / trial (ms) | driver peak RSS (MB) | RSS at 25/50/75/100% of the wall (MB) "
        "| RSS once 25/50/75/100% of the trials ended (MB) | RSS / further trial (KiB) "
        "| RSS added after the last trial (MB) | MLflow requests / trial | MLflow server CPU (s) | MLflow exact |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        label = f"{r['trials']} (killed after {r['killed_after_trials']}, resumed)" if r["killed_and_resumed"] else str(r["trials"])
        label += row_variant(r)
        runs = r["runs"]
        exact = (f"{'yes' if r['exact'] else 'NO'}: {runs.get('parent', 0)} + {runs.get('trial', 0)} + "
                 f"{runs.get('aggregate', 0)} runs, {r['config_seed_twice']} (config, seed) twice, "
                 f"{r['runs_with_an_epoch_twice']} epochs twice"
                 + (f", {r['orphaned_runs_deleted']} runs of forgotten trials deleted" if r.get("orphaned_runs_deleted") else ""))
        lines.append(f"| {label} | {r['sweep_wall_s']} | {r['ideal_s']} | {r['wall_over_ideal'] or '-'} | "
                     f"{slot_overhead_s(r) or '-'} | "
                     f"{r['trials_per_s'] or '-'} | {r['driver_cpu_s']} | {r['driver_cpu_ms_per_trial']} | "
                     f"{r['driver_peak_rss_mb']} | {' / '.join(map(str, r['driver_rss_quarters_mb']))} | "
                     f"{' / '.join(map(dash, r.get('driver_rss_at_trial_quarters_mb') or [None]))} | "
                     f"{dash(r.get('driver_rss_kib_per_trial'))} | {dash(r.get('driver_rss_end_of_run_mb'))} | "
                     f"{r['mlflow_requests_per_trial']} | {r['mlflow_server_cpu_s']} | {exact} |")
    lines += ["", "A killed and resumed sweep: 'killed after' counts the trials Tune had ended; its sweep wall is the "
              "resumed driver's, its CPU, RSS, requests and server CPU are both drivers' together (Tune restores and "
              "re-runs the trials its last snapshot had not ended, so no ideal is given)."]
    return lines


def dash(value: Any) -> str:
    """A measured number as is (0.0 included); '-' where the row has none (older rows, too few trials)."""
    return "-" if value is None else str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--server-workers", type=int, default=SERVER_WORKERS,
                        help="mlflow server worker processes (--workers)")
    parser.add_argument("--kill-at", type=float, default=0.5, help="kill and resume the largest sweep (0: don't)")
    parser.add_argument("--out", default="bench/results/scale.md")
    parser.add_argument("--kill-only", action="store_true", help="only the killed sweep; keep the other rows on file")
    parser.add_argument("--train-samples", type=int, default=TRAIN_SAMPLES,
                        help="CB training examples per seed and epoch (batch 8): sets how long a trial trains")
    parser.add_argument("--trials-per-run", type=int, default=DEFAULT_TRIALS_PER_RUN,
                        help="sweep.trials_per_run: each sweep as Tune runs of at most this many trials "
                             f"(default {DEFAULT_TRIALS_PER_RUN}, ipt-ray's; 0: one Tune run)")
    parser.add_argument("--one-process", action="store_true",
                        help="a split sweep's runs all in one driver process (sweep.fresh_process_per_run: false)")
    parser.add_argument("--render", action="store_true", help="only rewrite the table from the JSON on file")
    args = parser.parse_args(argv)
    if args.render:
        data = json.loads(Path(args.out).with_suffix(".json").read_text())  # other keys (raw extra rows) kept
        write_results(Path(args.out), render(data["rows"], args.nodes), data)
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="ipt-scale-"))
    backbone = make_tiny_backbone(workdir / "bert")
    rows = []
    if args.kill_only and Path(args.out).with_suffix(".json").is_file():
        rows = [r for r in json.loads(Path(args.out).with_suffix(".json").read_text())["rows"]
                if not r["killed_and_resumed"]]
    with mlflow_server(workdir / "mlflow", workers=args.server_workers) as server, \
            simulated_cluster(args.nodes) as cluster:
        for trials in [] if args.kill_only else args.trials:
            rows.append(run_size(trials, server, cluster, backbone, workdir, None, args.nodes, args.train_samples,
                                 args.trials_per_run, not args.one_process))
            print(json.dumps(rows[-1]), flush=True)
        if args.kill_at:
            rows.append(run_size(max(args.trials), server, cluster, backbone, workdir, args.kill_at, args.nodes,
                                 args.train_samples, args.trials_per_run, not args.one_process))
            print(json.dumps(rows[-1]), flush=True)
    write_results(Path(args.out), render(rows, args.nodes), {"rows": rows})
    return 0 if all(r["exact"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
