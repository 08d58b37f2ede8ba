"""Child runs of trials that a resumed Tune no longer knows (mixed into :class:`~ipt_ray.tracking.SweepTracker`).

A driver killed between a trial's first MLflow write and Tune's next experiment snapshot leaves child
runs of a trial that the resumed Tune never restores. Two things can follow:

- the restored searcher proposes the same config again under a new trial id (a grid, a few-shot phase's
  fixed points, an Optuna sampler still in its seeded random start-up): :meth:`OrphanRuns.adopt_orphans`
  re-tags the runs to the new trial, so one run per (config, seed) holds the epochs once;
- it proposes another config (Optuna's TPE once trials have ended: which ones have ended at each
  proposal differs between the killed driver and the resumed one): nothing will ever train those runs
  again. :meth:`OrphanRuns.retire_orphans`, at the end of a resumed sweep, ends them ``KILLED``, tags them
  ``ipt.status=orphaned`` and deletes them (MLflow's soft delete: ``mlflow gc`` purges, the UI's
  "deleted" view and ``restore_run`` bring them back), so the experiment holds exactly the trials
  Tune ran and ``report`` reads no half-trained config.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterable, Mapping, Sequence

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

ORPHAN_OPS = ("adopt_orphans", "retire_orphans")  # the journal records this module replays
ORPHANED = "orphaned"  #: ``ipt.status`` of a retired run


class OrphanRuns:
    """Adopting and retiring the runs of trials Tune no longer knows."""

    client: MlflowClient
    sweep_id: str
    _forget_trial: Callable[[str], None]  # drop a trial's cached runs (SweepTracker)
    _write: Callable[..., Any]
    _search: Callable[..., list[Run]]

    def adopt_orphans(self, trial_id: str, config_id: str, known_trial_ids: Iterable[str]) -> None:
        """Give a trial the child runs of its config that belong to a trial Tune no longer knows.

        Re-tagging those runs keeps one run per (config, seed), and the epochs they hold already are not
        logged again. Runs of trials Tune knows (a config that was really proposed twice) are left alone.
        """
        payload = {"trial_id": trial_id, "config_id": config_id, "known": sorted(known_trial_ids)}
        self._write("adopt_orphans", payload, lambda: self._adopt_orphans_now(trial_id, config_id, payload["known"]))

    def _adopt_orphans_now(self, trial_id: str, config_id: str, known: Sequence[str]) -> None:
        runs = self._search({"ipt.sweep_id": self.sweep_id, "ipt.kind": "trial", "ipt.config_id": config_id})
        seeds_held = {run.data.tags["ipt.seed"] for run in runs if run.data.tags.get("ipt.trial_id") == trial_id}
        for run in runs:  # oldest first, as SweepTracker._trial_runs keeps them
            seed = run.data.tags["ipt.seed"]
            if run.data.tags.get("ipt.trial_id") not in {trial_id, *known} and seed not in seeds_held:
                self.client.set_tag(run.info.run_id, "ipt.trial_id", trial_id)
                seeds_held.add(seed)
        self._forget_trial(trial_id)  # its runs are read back from the tags at its next write

    def retire_orphans(self, known_trial_ids: Iterable[str], tags: Mapping[str, str] | None = None) -> int:
        """End ``KILLED``, tag ``ipt.status=orphaned`` and delete this sweep's child runs (with ``tags``,
        e.g. one few-shot phase's) whose trial is not in ``known_trial_ids``: call it once Tune has run
        every trial and the trial writes have landed. Returns how many runs it retired (0 when journaled);
        a replay retires only what is still active."""
        payload = {"known": sorted(set(known_trial_ids)), "tags": dict(tags or {})}
        return self._write("retire_orphans", payload,
                           lambda: self._retire_orphans_now(payload["known"], payload["tags"]), default=0)

    def _retire_orphans_now(self, known: Sequence[str], tags: Mapping[str, str]) -> int:
        runs = self._search({"ipt.sweep_id": self.sweep_id, "ipt.kind": "trial", **tags})
        known_ids = set(known)
        orphans = [run for run in runs if run.data.tags.get("ipt.trial_id") not in known_ids]
        for run in orphans:
            run_id = run.info.run_id
            self.client.set_tag(run_id, "ipt.status", ORPHANED)
            if run.info.status == "RUNNING":
                self.client.set_terminated(run_id, "KILLED")
            self.client.delete_run(run_id)
            self._forget_trial(run.data.tags.get("ipt.trial_id", ""))
        if orphans:
            log.warning("MLflow: %d child runs of %d trials the resumed sweep no longer knows were deleted "
                        "(ipt.status=orphaned; restore with MlflowClient.restore_run)", len(orphans),
                        len({run.data.tags.get("ipt.trial_id") for run in orphans}))
        return len(orphans)

    def replay_orphan_write(self, op: str, args: Mapping[str, Any]) -> None:
        """Replay one journaled write of :data:`ORPHAN_OPS`."""
        if op == "adopt_orphans":
            self._adopt_orphans_now(args["trial_id"], args["config_id"], args["known"])
        else:
            self._retire_orphans_now(args["known"], args.get("tags") or {})
