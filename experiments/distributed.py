"""``predict --engine ray``: the local engine's labelling, spread over the workers of a Ray cluster.

The driver (the ``predict`` command) checks every input exactly as the
local engine does, counts the paragraphs of each file and cuts them, in
input order, into shards of ``shard_rows`` paragraphs: shard *k* is
paragraphs ``k * shard_rows`` up to ``(k + 1) * shard_rows``, the same
shards on every run of the same command. Ray Data hands the shards to a
pool of actors (``map_batches`` with ``ShardLabeller``, which loads the
run's saved models once per actor); an actor reads its shard's paragraphs
from the input files with ``experiments.inputs.iter_file`` (documents
segmented by the corpus rules, table rows normalised) and labels them with
``Predictor.predict``, ``batch_size`` paragraphs at a time. The driver
writes each labelled shard as ``part-NNNNN.parquet`` (a temporary name,
then a rename) and records it in ``_manifest.json``.

Rerunning the same command skips the shards the manifest lists as done. An
actor that dies mid-shard is restarted by Ray and the shard is labelled
again from its first paragraph; nothing it had labelled reaches a shard
file, so no row is lost or written twice.

While Ray runs, everything it prints (its C++ core's log lines, and its
notes on restarted workers) goes to ``OUT/.ray.log`` instead of the
terminal; the progress bar and this command's own messages still reach it.

The shard files have the columns of the local engine's Parquet output
(``experiments.predict.arrow_schema``); read them all at once with
``pyarrow.parquet.read_table(OUT)`` or ``pandas.read_parquet(OUT)``.

>>> [(s.index, s.start, s.rows, [seg[-2:] for seg in s.segments])
...  for s in plan_shards([(Path("a.txt"), "document", "a.txt"), (Path("b.csv"), "csv", "b.csv")], [3, 4], 5)]
[(0, 0, 5, [(0, 3), (0, 2)]), (1, 5, 2, [(2, 4)])]
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import socket
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from experiments.errors import UserError
from experiments.inputs import Inputs, TableColumns, count_per_file, iter_file
from experiments.io import write_text_atomic
from experiments.predict import (
    PredictSummary,
    Predictor,
    _chunks,
    _output_rows,
    arrow_schema,
    arrow_table,
    summarize,
    write_parquet,
)

SHARD_ROWS = 10_240  # 40 batches of the default 256, so the model calls are the local engine's chunks
BATCH_SIZE = 256
RAY_LOG = ".ray.log"
MANIFEST = "_manifest.json"  # "_" and "." files are skipped by pyarrow and pandas when they read the folder
MANIFEST_FORMAT = 1
# Set by the tests only: (marker file, batch number): the first actor to label that many batches exits
# abruptly, once (the marker records that it did), to show that a killed worker loses and repeats no row.
_CRASH_ONCE: tuple[str, int] | None = None


@dataclass
class Shard:
    index: int
    start: int  # the first paragraph's number in the whole input (0-based)
    rows: int
    segments: list[tuple[str, str, str, int, int]]  # (file, kind, source, first, stop): paragraphs of one file

    @property
    def name(self) -> str:
        return f"part-{self.index:05d}.parquet"


def plan_shards(files: list[tuple[Path, str, str]], counts: list[int], shard_rows: int) -> list[Shard]:
    """Cut the paragraphs of ``files`` ((path, kind, source), with ``counts`` paragraphs each) into shards."""
    shards: list[Shard] = []
    current: Shard | None = None
    position = 0
    for (path, kind, source), count in zip(files, counts):
        first = 0
        while first < count:
            if current is None or current.rows == shard_rows:
                current = Shard(len(shards), position, 0, [])
                shards.append(current)
            take = min(count - first, shard_rows - current.rows)
            current.segments.append((str(Path(path).resolve()), kind, source, first, first + take))
            current.rows += take
            first += take
            position += take
    return shards


class ShardLabeller:
    """A Ray Data actor: loads the run's models once, then reads and labels whole shards."""

    def __init__(self, run_dir: str, model: str | None, similarity: bool, models: dict, run: str,
                 columns: dict, min_confidence: float | None, batch_size: int, schema_bytes: bytes,
                 crash_once: tuple[str, int] | None = None):
        import pyarrow as pa

        try:
            self.predictor = Predictor.from_run(run_dir, model, similarity=similarity)
        except UserError as exc:
            raise UserError(f"{exc} (on Ray node {socket.gethostname()}: every node needs the run directory "
                            "at the same path)") from None
        if self.predictor.describe() != models:
            raise UserError(f"{run_dir}: the Ray node {socket.gethostname()} has other models there "
                            f"({self.predictor.describe()}, not {models}); give every node the same run directory")
        self.run = run
        self.columns = TableColumns(**columns)
        self.min_confidence = min_confidence
        self.batch_size = batch_size
        self.schema = pa.ipc.read_schema(pa.py_buffer(schema_bytes))
        self.crash_once = crash_once
        self.batches = 0

    def __call__(self, batch):
        import pyarrow as pa

        tables = []
        for shard, spec in zip(batch.column("shard").to_pylist(), batch.column("spec").to_pylist()):
            spec = json.loads(spec)
            table = pa.concat_tables(list(self._label(spec)))
            tables.append(table.append_column("_shard", pa.array([shard] * table.num_rows, pa.int64()))
                               .append_column("_row", pa.array(range(spec["start"], spec["start"] + table.num_rows),
                                                               pa.int64())))
        return pa.concat_tables(tables)

    def _label(self, spec: dict):
        paragraphs = _read_shard(spec, self.columns)
        for chunk in _chunks(paragraphs, self.batch_size):
            rows = list(_output_rows(chunk, self.predictor.predict([p["text"] for p in chunk]), self.predictor,
                                     run=self.run))
            if self.min_confidence is not None:
                for row in rows:
                    row["needs_review"] = row["confidence"] < self.min_confidence
            self.batches += 1
            self._maybe_crash()
            yield arrow_table(rows, self.schema)

    def _maybe_crash(self) -> None:
        if self.crash_once is None:
            return
        marker, after = self.crash_once
        if self.batches >= after:
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return
            os._exit(1)


def _read_shard(spec: dict, columns: TableColumns):
    """The paragraphs of one shard, read from its files (checked by the driver; refused if changed since)."""
    got = 0
    for path, kind, source, first, stop in spec["segments"]:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{source}: not found on Ray node {socket.gethostname()}; every node needs the inputs "
                            f"at the same path ({path})")
        if path.stat().st_size != spec["sizes"].get(str(path), path.stat().st_size):
            raise UserError(f"{source}: changed or gone since the inputs were checked; run the command again")
        for n, paragraph in enumerate(iter_file(path, kind, source, columns, first), start=first):
            if n >= stop:
                break
            got += 1
            yield paragraph
    if got != spec["rows"]:
        raise UserError(f"{spec['segments'][0][2]}: changed since the inputs were checked; run the command again")


def _job(predictor: Predictor, inputs: Inputs, signature: list[dict], shard_rows: int, min_confidence,
         similarity: bool, total: int) -> dict:
    """What makes two runs the same job: the same rows, models and options that change a row."""
    return {"run": str(predictor.run_dir.resolve()), "models": predictor.describe(),
            "codebook_version": predictor.codebook_version, "inputs": signature,
            "columns": vars(inputs.columns), "rows": total, "shard_rows": shard_rows,
            "min_confidence": min_confidence, "similarity": similarity}


_JOB_DIFFERENCES = {  # in the order a message names the first difference
    "inputs": "different inputs", "rows": "different inputs", "columns": "different --text/--id/--doc-column",
    "run": "a different run", "models": "different models", "codebook_version": "a different codebook version",
    "shard_rows": "a different --shard-rows", "min_confidence": "a different --min-confidence",
    "similarity": "--no-similarity where this one has none, or the other way round",
}


def _open_out(out: Path, job: dict) -> dict | None:
    """The manifest of the same job in ``out`` (to resume), or None for a new or empty folder; else refuse."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: is a file; --engine ray writes a folder of Parquet shards, name a new or empty folder")
    if not out.exists() or not any(out.iterdir()):
        return None
    try:
        manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
        saved = manifest["job"]
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"--out {out}: is not empty and holds no {MANIFEST} of this job; "
                        "choose another folder or delete it") from None
    if saved != job:
        differ = next((words for k, words in _JOB_DIFFERENCES.items() if saved.get(k) != job.get(k)), "other settings")
        raise UserError(f"--out {out}: holds the output of another job ({differ}); "
                        "choose another folder or delete it, or rerun that job's command to resume it")
    return manifest


def _shard_done(out: Path, entry: dict) -> bool:
    import pyarrow.parquet as pq

    path = out / entry["file"]
    if entry.get("status") != "done" or not path.is_file():
        return False
    try:
        with pq.ParquetFile(path) as parquet:
            return parquet.metadata.num_rows == entry["rows"]
    except Exception:  # a torn or foreign file: label the shard again
        return False


@contextmanager
def _output_to(log: Path):
    """Send file descriptors 1 and 2 (Python's, Ray's C++ core's, and those of the processes Ray starts) to ``log``.

    Ray prints its workers' and raylet's messages (an actor restarted, a task
    retried) on standard output and error; this command writes no rows
    there. Yields a stream to the original standard error, for the progress bar.
    """
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    with open(log, "ab") as handle:
        for fd in saved:
            os.dup2(handle.fileno(), fd)
    terminal = os.fdopen(os.dup(saved[2]), "w", encoding=sys.stderr.encoding or "utf-8", errors="replace")
    try:
        yield terminal
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        terminal.close()
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)


class _RayDidNotStart(UserError):
    pass


def _check_address(address: str) -> None:
    """Refuse at once a ``HOST:PORT`` where nothing listens (Ray itself keeps retrying for minutes)."""
    if address == "auto":
        return  # Ray finds the cluster this machine belongs to, or says at once that there is none
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=10).close()
    except (OSError, ValueError) as exc:
        reason = "not HOST:PORT" if isinstance(exc, ValueError) else (exc.strerror or str(exc) or type(exc).__name__)
        raise UserError(f"--address {address}: no Ray cluster answers there ({reason}); start one with "
                        "`ray start --head`, which prints its address, or leave out --address to run on this machine"
                        ) from None


@contextmanager
def _ray_session(address: str | None, num_workers: int | None):
    """Join the cluster at ``address``, or start Ray on this machine; shut down only what was started here."""
    import ray

    started = False
    if not ray.is_initialized():
        options = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        try:
            if address:
                ray.init(address=address, **options)
            else:
                ray.init(address="local", num_cpus=num_workers, **options)  # None: the CPUs Ray finds
        except Exception as exc:
            reason = _reason(exc)
            if "InvalidAuthToken" in reason:
                raise _RayDidNotStart(
                    f"--address {address}: the cluster wants its authentication token; set RAY_AUTH_MODE=token and "
                    "RAY_AUTH_TOKEN to what `ray get-auth-token` prints on its head node, or run this command on "
                    "the head node with --address auto") from None
            if address:
                raise _RayDidNotStart(f"--address {address}: could not join a Ray cluster there ({reason}); start one "
                                      "with `ray start --head`, or leave out --address to run on this machine") from None
            raise _RayDidNotStart(f"Ray did not start on this machine ({reason})") from None
        started = True
    _quiet_ray_data()
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def _reason(exc: BaseException) -> str:
    """The first line of the innermost cause of ``exc`` (Ray wraps the real reason a few times)."""
    while (exc.__cause__ or exc.__context__) is not None:
        exc = exc.__cause__ or exc.__context__
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[-1].strip() if lines and "Traceback" in lines[0] else (lines[0].strip() if lines else type(exc).__name__)


def _quiet_ray_data() -> None:
    """Ray Data's own progress bars and log lines stay in its log files, off the terminal."""
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.raise_original_map_exception = True
    for handler in logging.getLogger("ray.data").handlers:
        if not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.ERROR)


def _user_error(exc: BaseException) -> UserError | None:
    """The ``UserError`` a worker raised, found in the exception Ray hands back."""
    last, seen = exc, set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        cause = getattr(exc, "cause", None)  # a RayTaskError(UserError) is a UserError too, with a traceback for text
        if isinstance(cause, BaseException):
            exc = cause
        elif isinstance(exc, UserError):
            return exc
        else:
            exc = exc.__cause__ or exc.__context__
    # An actor whose __init__ raised comes back as ActorDiedError, with the worker's traceback only as text.
    found = [line for line in str(last).splitlines() if line.startswith(_USER_ERROR_LINE)]
    return UserError(found[-1].removeprefix(_USER_ERROR_LINE)) if found else None


_USER_ERROR_LINE = f"{UserError.__module__}.{UserError.__qualname__}: "


def predict_ray(
    run_dir: str | Path,
    inputs: Inputs,
    out: Path,
    model: str | None = None,
    num_workers: int | None = None,
    batch_size: int = BATCH_SIZE,
    shard_rows: int = SHARD_ROWS,
    address: str | None = None,
    progress: bool = True,
    min_confidence: float | None = None,
    similarity: bool = True,
) -> PredictSummary:
    """Label every paragraph of ``inputs`` into Parquet shards under the folder ``out``, with Ray workers.

    ``num_workers`` actors (default: one per CPU that Ray has) each label one
    shard at a time. Without ``address`` Ray starts on this machine and stops
    at the end; with one (``auto``, ``HOST:6379``) the command joins that
    cluster, whose nodes must see the run directory and the inputs at the
    same paths. If Ray is already running in this process (a notebook, the
    tests) it is used as it is, and left running.
    """
    out = Path(out)
    if batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    if shard_rows < 1:
        raise UserError("--shard-rows must be at least 1")
    if num_workers is not None and num_workers < 1:
        raise UserError("--num-workers must be at least 1")
    if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
        raise UserError(f"--min-confidence {min_confidence}: give a probability between 0 and 1")
    if importlib.util.find_spec("ray") is None:
        raise UserError("--engine ray needs Ray: install it with `pip install -c constraints.txt -e '.[ray]'` "
                        "(`make install` does)")
    if address and "-" in inputs.names:
        raise UserError("--address: the cluster's workers cannot read this machine's standard input; "
                        "save it to a file they can reach")
    inputs.check_output(out)
    signature = inputs.signature()
    counts = count_per_file(inputs)  # every input is checked before anything is written or started
    total = sum(counts)
    if inputs.signature() != signature:
        raise UserError(f"{', '.join(inputs.names)}: changed while being checked; run the command again")
    predictor = Predictor.from_run(run_dir, model, similarity=similarity)
    if address:
        _check_address(address)
    schema = arrow_schema(predictor, min_confidence is not None)
    job = _job(predictor, inputs, signature, shard_rows, min_confidence, similarity, total)
    saved = _open_out(out, job)
    shards = plan_shards([(p, kind, inputs.source(p)) for p, kind in inputs.files], counts, shard_rows)
    entries = {e["file"]: e for e in saved["shards"]} if saved else {}
    done = {s.index for s in shards if s.name in entries and _shard_done(out, entries[s.name])}
    manifest = {
        "format": MANIFEST_FORMAT, "engine": "ray", "job": job, "run": str(predictor.run_dir), "rows": total,
        "columns": schema.names, "complete": False,
        "settings": {"address": address, "num_workers": num_workers, "batch_size": batch_size},
        "shards": [entries[s.name] if s.index in done else
                   {"file": s.name, "start": s.start, "rows": s.rows, "status": "pending"} for s in shards],
    }
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    keep = {s.name for s in shards if s.index in done}
    for stale in out.iterdir():  # an unfinished shard's temporary file, or a shard written but not recorded
        if stale.is_file() and stale.name.startswith((".part-", "part-")) and stale.name not in keep:
            stale.unlink()
    write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=1))
    resumed_from = sum(s.rows for s in shards if s.index in done)
    pending = [s for s in shards if s.index not in done]
    if pending:
        labeller = dict(run_dir=str(predictor.run_dir.resolve()), model=model, similarity=similarity,
                        models=predictor.describe(), run=str(predictor.run_dir), columns=vars(inputs.columns),
                        min_confidence=min_confidence, batch_size=batch_size,
                        schema_bytes=schema.serialize().to_pybytes(), crash_once=_CRASH_ONCE)
        sizes = {str(p.resolve()): entry["bytes"] for (p, _), entry in zip(inputs.files, signature)}
        try:
            _run(pending, out, manifest, labeller, sizes, schema, address, progress, total, resumed_from)
        except _RayDidNotStart:
            if saved is None:  # leave no trace of a job that never started
                for name in (MANIFEST, RAY_LOG):
                    (out / name).unlink(missing_ok=True)
                if created:
                    out.rmdir()
            raise
    manifest["complete"] = True
    write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=1))
    counted = {k: sum(e.get(k, 0) for e in manifest["shards"]) for k in ("needs_review", "unfamiliar")}
    return summarize(predictor, total, resumed_from, out, counted["needs_review"], counted["unfamiliar"])


def _run(pending: list[Shard], out: Path, manifest: dict, labeller: dict, sizes: dict, schema, address: str | None,
         progress: bool, total: int, resumed_from: int) -> None:
    """Label the ``pending`` shards with a pool of ``ShardLabeller`` actors, writing each shard as it comes back."""
    import pyarrow as pa
    import pyarrow.compute as pc

    num_workers = manifest["settings"]["num_workers"]
    with _output_to(out / RAY_LOG) as terminal, _ray_session(address, num_workers) as ray:
        workers = num_workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        manifest["settings"]["num_workers"] = workers
        items = [{"shard": s.index, "spec": json.dumps({"start": s.start, "rows": s.rows, "segments": s.segments,
                                                         "sizes": {seg[0]: sizes.get(seg[0]) for seg in s.segments}})}
                 for s in pending]
        dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            ShardLabeller, fn_constructor_kwargs=labeller,
            # One shard per call; Ray Data restarts an actor that died and retries its shard (its defaults
            # max_restarts=-1 and max_task_retries=-1 for actor pools).
            batch_size=1, batch_format="pyarrow", concurrency=min(workers, len(items)), num_cpus=1,
        )
        by_index = {s.index: s for s in pending}
        entries = {e["file"]: e for e in manifest["shards"]}
        held: dict[int, list] = {}
        bar = tqdm(total=total, initial=resumed_from, unit="para", desc="predict (ray)", disable=not progress,
                   dynamic_ncols=True, file=terminal)
        try:
            for block in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
                for index in pc.unique(block.column("_shard")).to_pylist():
                    held.setdefault(index, []).append(block.filter(pc.equal(block.column("_shard"), index)))
                    shard = by_index[index]
                    if sum(t.num_rows for t in held[index]) < shard.rows:
                        continue  # a shard that Ray handed back in pieces
                    table = pa.concat_tables(held.pop(index)).sort_by("_row")
                    if table.column("_row").to_pylist() != list(range(shard.start, shard.start + shard.rows)):
                        raise RuntimeError(f"shard {index}: rows missing or repeated; run the command again")
                    table = table.select(schema.names)
                    tmp = out / f".{shard.name}.tmp"
                    write_parquet(table.to_batches(), schema, tmp)
                    os.replace(tmp, out / shard.name)
                    entries[shard.name].update(status="done", needs_review=_count_true(table, "needs_review"),
                                               unfamiliar=_count_true(table, "unfamiliar"))
                    write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=1))
                    bar.update(shard.rows)
        except Exception as exc:
            error = _user_error(exc)
            if error is not None:  # one line, as Ray Data adds its own advice about retries below it
                raise UserError(str(error).splitlines()[0]) from None
            raise
        finally:
            bar.close()


def _count_true(table, column: str) -> int:
    import pyarrow.compute as pc

    if column not in table.column_names:
        return 0
    return int(pc.sum(table.column(column)).as_py() or 0)
