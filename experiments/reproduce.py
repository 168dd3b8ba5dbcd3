"""Re-running a finished run from its saved config and checking that its numbers come back.

``reproduce`` runs ``RUN_DIR/config.yaml`` again into a scratch results
folder and compares the new ``metrics.json`` and ``predictions.jsonl`` with
the saved ones, value by value. It also says what else differs between then
and now (data fingerprint, commit, package versions), since those are the
usual reasons numbers move.

The comparison is ``analysis.differences``, the same walk that finds the
config keys that differ between runs in the report.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from experiments.analysis import count_values, differences
from experiments.rundir import CONFIG, META, METRICS, PREDICTIONS, not_a_run, open_run, read_json


@dataclass
class Reproduction:
    run_dir: Path
    new_run: Path | None
    compared: int
    metric_differences: list[tuple[str, Any, Any]] = field(default_factory=list)
    predictions_identical: bool = True
    context: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.metric_differences and self.predictions_identical

    def lines(self, limit: int = 20) -> list[str]:
        out = []
        if self.identical:
            out.append(f"reproduced {self.run_dir}: all {self.compared} metric values and every prediction are identical")
        else:
            out.append(f"NOT reproduced {self.run_dir}: {len(self.metric_differences)} of {self.compared} metric values differ"
                       + ("" if self.predictions_identical else "; predictions.jsonl differs"))
            for where, old, new in self.metric_differences[:limit]:
                out.append(f"  {where}: {old} -> {new}")
            if len(self.metric_differences) > limit:
                out.append(f"  ... and {len(self.metric_differences) - limit} more")
        out += [f"  {line}" for line in self.context]
        if self.new_run is not None:
            out.append(f"  the new run is kept in {self.new_run}")
        return out


def _context(old_meta: dict, new_meta: dict) -> list[str]:
    """What differs between the environment of the saved run and of the new one."""
    out = []
    old_fp, new_fp = old_meta["data"]["fingerprint"], new_meta["data"]["fingerprint"]
    if old_fp != new_fp:
        out.append(f"the data changed since the run: fingerprint {old_fp} -> {new_fp} "
                   f"({old_meta['data'].get('n_paragraphs')} -> {new_meta['data'].get('n_paragraphs')} paragraphs)")
    old_git, new_git = old_meta.get("git", {}), new_meta.get("git", {})
    if old_git.get("commit") != new_git.get("commit"):
        out.append(f"code: commit {str(old_git.get('commit'))[:10]} -> {str(new_git.get('commit'))[:10]}")
    if new_git.get("dirty"):
        out.append("code: the checkout has uncommitted changes")
    for name, version in old_meta.get("packages", {}).items():
        now = new_meta.get("packages", {}).get(name)
        if now != version:
            out.append(f"package {name}: {version} -> {now}")
    if old_meta.get("python") != new_meta.get("python"):
        out.append(f"python {old_meta.get('python')} -> {new_meta.get('python')}")
    return out


def reproduce(run_dir: Path, results: Path | None = None, progress: bool = False, log=print) -> Reproduction:
    """Run ``run_dir``'s saved config again and compare; keep the new run only when ``results`` is given."""
    from experiments.run import run_experiment
    from experiments.summary import summarise_run

    run = open_run(run_dir)
    old_metrics, old_meta = run.metrics, run.meta
    for name in (CONFIG, PREDICTIONS):
        if not (run.dir / name).is_file():
            raise not_a_run(run.dir, f"no {name}")
    scratch = None if results is not None else Path(tempfile.mkdtemp(prefix="experiments-reproduce-"))
    try:
        new_run = run_experiment(run.dir / CONFIG, results=results or scratch, progress=progress, log=log)
        new_metrics, new_meta = read_json(new_run, METRICS), read_json(new_run, META)
        same_predictions = (new_run / PREDICTIONS).read_bytes() == (run.dir / PREDICTIONS).read_bytes()
        if results is not None:
            summarise_run(new_run)  # a kept run is complete, as `run` leaves it
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return Reproduction(
        run_dir=run.dir,
        new_run=new_run if results is not None else None,
        compared=count_values(old_metrics),
        metric_differences=[(where, old, new) for where, (old, new) in differences([old_metrics, new_metrics])],
        predictions_identical=same_predictions,
        context=_context(old_meta, new_meta),
    )
