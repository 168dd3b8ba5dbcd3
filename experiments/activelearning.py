"""``bench --active-learning DATASET``: replay labelling to measure whether uncertainty order saves labels.

The gold labels of an imported dataset play the annotator. Every replay
starts from the same random seed set of pool rows; then each order adds
``step`` labels at a time and the ``Learner`` is retrained after every step,
as the annotation app retrains every N decisions:

- ``uncertain``: ``diverse_order`` over the ``uncertainty`` of the Learner's
  predictions for the unlabelled pool (with the paragraphs just labelled as
  ``recent``), the ranking the app serves;
- ``random``: a seeded shuffle of the pool;
- ``document``: the pool in file order.

After each step the Learner labels the held-out test rows and their stance
macro-F1 is recorded: scikit-learn's ``f1_score(average="macro")`` over the
stance labels present in the test rows (a predicted label the test rows
lack counts against precision only). The curves are averaged over
``repeats`` seeds; the report gives, for each order, the labels it needs
to reach the random order's final macro-F1 (at the full budget) and its
ratio to what the random order needs.

>>> labels_needed([20, 30, 40, 50], [0.30, 0.41, 0.39, 0.45], 0.40)
30
>>> labels_needed([20, 30], [0.30, 0.35], 0.40) is None
True
"""

from __future__ import annotations

import inspect
import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from experiments import importer, learner as learner_module, paths
from experiments.errors import UserError
from experiments.learner import Learner, diverse_order, uncertainty

ORDERS = ("uncertain", "random", "document")
# The app ranks with ``diverse_order``'s diversity weight; learner.py exports no separate constant (yet), so the
# default of ``diverse_order`` itself is the app's weight (0.5 when this was written).
DIVERSITY = float(getattr(learner_module, "DIVERSITY",
                          inspect.signature(diverse_order).parameters["diversity"].default))
TEST_SHARE = 0.3  # held out when the dataset has no split column
SPLIT_SEED = 0  # the held-out part is the same for every repeat and every order
METRIC = "stance macro-F1: sklearn f1_score(average='macro') over the stance labels present in the test rows"


@dataclass
class Result:
    """The averaged learning curves of one replay, what each order needs, and where they were written."""

    dataset: str
    target: str | None
    model: str
    orders: list[str]
    labels: list[int]  # the labelled counts at which the test set was scored: seed, seed + step, ..., budget
    curves: dict[str, list[list[float]]]  # order -> one macro-F1 curve per repeat, aligned with ``labels``
    target_f1: float  # the random order's mean macro-F1 at the full budget
    needed: dict[str, int | None]  # order -> labels its mean curve needs to reach ``target_f1`` (None: never)
    ratio: dict[str, float | None]  # order -> needed[order] / needed["random"]
    needed_per_repeat: dict[str, list[int | None]]  # the same, per repeat, against that repeat's random final
    seed_size: int
    step: int
    repeats: int
    seed: int
    diversity: float
    pool: int
    test: int
    split: str
    metric: str = METRIC
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    sequences: dict[str, list[list[str]]] = field(default_factory=dict)  # order -> per repeat, row ids in label order
    png: Path | None = None
    json: Path | None = None

    @property
    def budget(self) -> int:
        return self.labels[-1]

    def mean(self, order: str) -> np.ndarray:
        return np.asarray(self.curves[order], dtype=float).mean(axis=0)


def labels_needed(labels, curve, target: float, tolerance: float = 1e-9) -> int | None:
    """The first labelled count whose macro-F1 reaches ``target`` (no interpolation), or None if none does."""
    for n, value in zip(labels, curve):
        if value >= target - tolerance:
            return int(n)
    return None


# --- data ----------------------------------------------------------------------------------------------------------


@dataclass
class _Rows:
    ids: list[str]
    texts: list[str]
    stance: list[str]  # codebook names
    frames: list[list[str]]


class _StanceOnly:
    """The codebook as the Learner sees it for a table without (codebook) frames: stance is all it learns."""

    frame_labels: list[str] = []

    def __init__(self, codebook):
        self._codebook = codebook

    def __getattr__(self, name):
        return getattr(self._codebook, name)


def _match(found: list[str], known: list[str]) -> tuple[dict[str, str], list[str]]:
    """Dataset label -> codebook label (exactly, else ignoring case), and the labels that match neither way."""
    folded = {k.casefold(): k for k in known}
    mapping, bad = {}, []
    for label in found:
        if label in known:
            mapping[label] = label
        elif label.casefold() in folded:
            mapping[label] = folded[label.casefold()]
        else:
            bad.append(label)
    return mapping, bad


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "target"


def _split(rows: list[int], stance: list[str], groups: list[str], seed: int) -> tuple[list[int], list[int], str]:
    """A fixed seeded 70/30 split of ``rows``: by group when rows share groups, else stratified by stance."""
    from sklearn.model_selection import GroupShuffleSplit, ShuffleSplit, StratifiedShuffleSplit

    y = [stance[i] for i in rows]
    g = [groups[i] for i in rows]
    if len(set(g)) < len(g):
        splitter, how = GroupShuffleSplit(n_splits=1, test_size=TEST_SHARE, random_state=seed), "grouped by doc_id"
    elif min(y.count(s) for s in set(y)) >= 2:
        splitter, how = StratifiedShuffleSplit(n_splits=1, test_size=TEST_SHARE, random_state=seed), "stratified by stance"
    else:
        splitter, how = ShuffleSplit(n_splits=1, test_size=TEST_SHARE, random_state=seed), "plain"
    train, test = next(splitter.split(np.zeros(len(rows)), y, g if how.startswith("grouped") else None))
    return ([rows[i] for i in sorted(train)], [rows[i] for i in sorted(test)],
            f"no split column: seeded {round((1 - TEST_SHARE) * 100)}/{round(TEST_SHARE * 100)} split ({how}, seed {seed})")


def load_rows(name: str, codebook, target: str | None = None, root: Path | None = None,
              log=print) -> tuple[_Rows, _Rows, str | None, str, object, list[str]]:
    """The pool and test rows of one target of an imported dataset, in codebook labels.

    Returns ``(pool, test, target, split description, codebook view, notes)``.
    """
    dataset, info = importer.load_imported(name, root=paths.IMPORTED if root is None else root)
    wanted = [c for c in ("id", "doc_id", "text", "stance", "frames", "target", "split") if c in dataset.column_names]
    columns = dataset.select_columns(wanted).to_dict()  # plain lists: indexing a Dataset row by row is slow
    n = len(columns["id"])
    if "stance" not in info.get("tasks", []) or all(s is None for s in columns.get("stance", [None])):
        raise UserError(f"imported dataset {name!r} has no stance labels; the active-learning bench replays stance")
    notes: list[str] = []

    targets = columns.get("target") or [None] * n
    counts: dict[str, int] = {}
    for t in targets:
        if t is not None:
            counts[t] = counts.get(t, 0) + 1
    if counts:
        if target is None:
            target = max(sorted(counts), key=lambda t: counts[t])  # most rows; ties: alphabetically first
            log(f"target: {target!r} (the most rows, {counts[target]}; choose another with --target: "
                f"{', '.join(sorted(counts))})")
        elif target not in counts:
            raise UserError(f"--target {target!r}: not a target of imported dataset {name!r} ({', '.join(sorted(counts))})")
        rows = [i for i in range(n) if targets[i] == target]
    else:
        if target is not None:
            raise UserError(f"--target {target!r}: imported dataset {name!r} has no target column")
        rows = list(range(n))

    stance_raw = columns["stance"]
    found = sorted({stance_raw[i] for i in rows if stance_raw[i] is not None})
    mapping, bad = _match(found, list(codebook.stance_labels))
    if bad:
        raise UserError(f"imported dataset {name!r}: stance labels {', '.join(bad)} are not in the codebook "
                        f"({', '.join(codebook.stance_labels)}); re-import it with --map OLD=NEW for each")
    renamed = {old: new for old, new in mapping.items() if old != new}
    if renamed:
        notes.append("stance labels matched to the codebook ignoring case: "
                     + ", ".join(f"{old} -> {new}" for old, new in renamed.items()))
    rows = [i for i in rows if stance_raw[i] is not None]

    frames_raw = columns.get("frames") or [[] for _ in range(n)]
    view, frame_map = _StanceOnly(codebook), {}
    if "frames" in info.get("tasks", []):
        found_frames = sorted({f for i in rows for f in frames_raw[i] or []})
        frame_map, bad_frames = _match(found_frames, list(codebook.frame_labels))
        if bad_frames or not found_frames:
            notes.append(f"frames left out (not codebook frames: {', '.join(bad_frames) or 'none present'}); "
                         "the Learner learns stance only")
            frame_map = {}
        else:
            view = codebook  # the app's Learner: stance and frames, and uncertainty over both

    def part(index: list[int]) -> _Rows:
        return _Rows(ids=[str(columns["id"][i]) for i in index], texts=[columns["text"][i] for i in index],
                     stance=[mapping[stance_raw[i]] for i in index],
                     frames=[[frame_map[f] for f in frames_raw[i] or [] if f in frame_map] for i in index])

    splits = columns.get("split") or [None] * n
    if any(splits[i] is not None for i in rows):
        pool = [i for i in rows if splits[i] == "train"]
        test = [i for i in rows if splits[i] == "test"]
        if not pool or not test:
            raise UserError(f"imported dataset {name!r}{f' target {target!r}' if target else ''}: its split column "
                            f"has {len(pool)} train and {len(test)} test rows; the bench needs both")
        dev = sum(splits[i] == "dev" for i in rows)
        how = f"the dataset's split column (train = pool, test = evaluation{f'; {dev} dev rows unused' if dev else ''})"
    else:
        if len(rows) < 4:
            raise UserError(f"imported dataset {name!r}: {len(rows)} labelled rows are too few to split")
        pool, test, how = _split(rows, stance_raw, columns["doc_id"], SPLIT_SEED)
    return part(pool), part(test), target, how, view, notes


# --- the replay ----------------------------------------------------------------------------------------------------


def _macro_f1(gold: list[str], pred: list[str]) -> float:
    from sklearn.metrics import f1_score

    present = sorted(set(gold))
    return float(f1_score(gold, pred, labels=present, average="macro", zero_division=0))


class _Replay:
    """One order of one repeat: the labelled pool rows so far, and the Learner retrained on them."""

    def __init__(self, pool: _Rows, test: _Rows, vectors: np.ndarray, learner: Learner, diversity: float):
        self.pool, self.test, self.vectors, self.learner, self.diversity = pool, test, vectors, learner, diversity
        self.labelled: list[int] = []
        self.fitted = False
        self.fallbacks = 0  # steps at which the Learner could not learn yet (one stance only)

    def fit_and_score(self) -> float:
        stance = [self.pool.stance[i] for i in self.labelled]
        self.fitted = self.learner.can_fit(stance)
        if self.fitted:
            self.learner.fit([self.pool.texts[i] for i in self.labelled], stance,
                             [self.pool.frames[i] for i in self.labelled])
            pred = [row["stance"] for row in self.learner.predict(self.test.texts)]
        else:  # nothing to learn from yet: every test row gets the one stance seen so far
            pred = [stance[0]] * len(self.test.texts)
        return _macro_f1(self.test.stance, pred)

    def next_uncertain(self, k: int, recent: list[int]) -> list[int]:
        left = sorted(set(range(len(self.pool.texts))) - set(self.labelled))
        if not self.fitted:  # the app has no model to rank by yet: file order
            self.fallbacks += 1
            return left[:k]
        predictions = self.learner.predict([self.pool.texts[i] for i in left])
        scores = [uncertainty(p) for p in predictions]
        ranked = diverse_order([str(i) for i in left], scores, self.vectors[left], diversity=self.diversity,
                               recent=self.vectors[recent] if recent else None)
        return [int(i) for i in ranked[:k]]


def replay(dataset_name: str, target: str | None = None, seed_size: int = 20, step: int = 10,
           orders=ORDERS, repeats: int = 3, model: str = "embed_logreg", diversity: float = DIVERSITY,
           max_labels: int | None = None, out_dir: Path | None = None, progress: bool = True, seed: int = 0,
           root: Path | None = None, device: str = "auto", log=print) -> Result:
    """Replay labelling of one target of an imported dataset in each order; write the curves' PNG and JSON.

    Repeat ``r`` uses seed ``seed + r`` for its seed set (shared by all
    orders) and its random order. ``out_dir`` defaults to
    ``results/bench/active_learning/<dataset>-<target>/``; the files are
    named after the model, so learners can be compared side by side.
    """
    from threadpoolctl import threadpool_limits
    from tqdm.auto import tqdm

    from experiments.codebook import load_codebook

    orders = list(dict.fromkeys(orders))
    unknown = [o for o in orders if o not in ORDERS]
    if unknown or "random" not in orders:
        raise UserError(f"orders {', '.join(orders)}: use some of {', '.join(ORDERS)}, including random "
                        "(its final macro-F1 is the target)")
    for option, value in (("--seed-size", seed_size), ("--step", step), ("--repeats", repeats)):
        if value < 1:
            raise UserError(f"{option} {value}: give a whole number of at least 1")
    started = time.perf_counter()
    codebook = load_codebook()
    pool, test, target, split, view, notes = load_rows(dataset_name, codebook, target, root=root, log=log)
    learner = Learner(view, model=model, seed=seed, device=device)  # checks the model name
    budget = len(pool.texts) if max_labels is None else min(max_labels, len(pool.texts))
    if seed_size >= budget:
        raise UserError(f"--seed-size {seed_size}: the budget is {budget} labels ({len(pool.texts)} pool rows"
                        f"{'' if max_labels is None else f', --max-labels {max_labels}'}); choose a smaller seed set")
    grid = list(range(seed_size, budget, step)) + [budget]
    if diversity == DIVERSITY and not hasattr(learner_module, "DIVERSITY"):
        notes.append(f"diversity {diversity:g}: diverse_order's default (learner.py exports no DIVERSITY constant)")
    log(f"{dataset_name}{f' / {target}' if target else ''}: pool {len(pool.texts)}, test {len(test.texts)} ({split}); "
        f"{model}, seed set {seed_size}, step {step}, budget {budget}, {repeats} repeat(s)")

    vectors = np.asarray(learner.embed(pool.texts + test.texts), dtype=float)[:len(pool.texts)]  # fills the cache

    curves: dict[str, list[list[float]]] = {o: [] for o in orders}
    sequences: dict[str, list[list[str]]] = {o: [] for o in orders}
    fallbacks = 0
    bar = tqdm(total=repeats * len(orders) * len(grid), desc=f"replay {target or dataset_name}", unit="fit",
               disable=not progress, dynamic_ncols=True)
    # Hundreds of small fits: one BLAS thread each is many times faster than threads that wait for each other.
    limits = threadpool_limits(limits=1, user_api="blas")
    try:
        for r in range(repeats):
            rng = np.random.default_rng([seed + r, 0])
            seed_set = sorted(int(i) for i in rng.choice(len(pool.texts), size=seed_size, replace=False))
            chosen = set(seed_set)
            rest = [i for i in range(len(pool.texts)) if i not in chosen]  # file order
            shuffled = [rest[int(i)] for i in np.random.default_rng([seed + r, 1]).permutation(len(rest))]
            for order in orders:
                run = _Replay(pool, test, vectors, Learner(view, model=model, seed=seed + r, device=device), diversity)
                run.labelled = list(seed_set)
                curve, recent = [], list(seed_set)
                for k, size in enumerate(grid):
                    if k:
                        want = size - len(run.labelled)
                        if order == "uncertain":
                            batch = run.next_uncertain(want, recent)
                        else:
                            source = shuffled if order == "random" else rest
                            batch = source[len(run.labelled) - seed_size:][:want]
                        run.labelled += batch
                        recent = batch
                    assert len(run.labelled) == size == len(set(run.labelled))
                    curve.append(round(run.fit_and_score(), 6))
                    bar.update(1)
                curves[order].append(curve)
                sequences[order].append([pool.ids[i] for i in run.labelled])
                fallbacks += run.fallbacks
    finally:
        bar.close()
        limits.restore_original_limits()
    if fallbacks:
        notes.append(f"uncertain order served file order at {fallbacks} step(s) where the Learner could not learn yet")

    target_f1 = float(np.mean([c[-1] for c in curves["random"]]))
    needed = {o: labels_needed(grid, np.mean(curves[o], axis=0), target_f1) for o in orders}
    ratio = {o: (needed[o] / needed["random"] if needed[o] is not None and needed["random"] else None) for o in orders}
    per_repeat = {o: [labels_needed(grid, curves[o][r], curves["random"][r][-1]) for r in range(repeats)]
                  for o in orders}
    result = Result(dataset=dataset_name, target=target, model=model, orders=orders, labels=grid, curves=curves,
                    target_f1=round(target_f1, 6), needed=needed, ratio=ratio, needed_per_repeat=per_repeat,
                    seed_size=seed_size, step=step, repeats=repeats, seed=seed, diversity=diversity,
                    pool=len(pool.texts), test=len(test.texts), split=split,
                    seconds=round(time.perf_counter() - started, 1), notes=notes, sequences=sequences)
    if out_dir is None:
        out_dir = paths.RESULTS / "bench" / "active_learning" / (f"{dataset_name}-{_slug(target)}" if target else dataset_name)
    write_outputs(result, Path(out_dir))
    return result


# --- output --------------------------------------------------------------------------------------------------------


def plot_curves(result: Result, path: Path) -> Path:
    """Mean macro-F1 against labels, one line per order with its min-max band across repeats, the target dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"uncertain": "tab:red", "random": "tab:blue", "document": "tab:gray"}
    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    x = np.asarray(result.labels)
    for order in result.orders:
        values = np.asarray(result.curves[order], dtype=float)
        mean = values.mean(axis=0)
        colour = colours.get(order)
        needed = result.needed[order]
        label = f"{order}: reaches target at {needed}" if needed is not None else f"{order}: never reaches target"
        ax.plot(x, mean, color=colour, lw=1.8, label=label)
        if len(values) > 1:
            ax.fill_between(x, values.min(axis=0), values.max(axis=0), color=colour, alpha=0.15, lw=0)
        if needed is not None:
            ax.plot([needed], [mean[result.labels.index(needed)]], "o", color=colour, ms=6)
    ax.axhline(result.target_f1, color="black", ls="--", lw=1,
               label=f"random's final macro-F1 {result.target_f1:.3f}")
    title = result.dataset + (f" / {result.target}" if result.target else "")
    ax.set_title(f"{title}: {result.model}, seed set {result.seed_size}, step {result.step}, "
                 f"{result.repeats} repeat(s) (band: min-max)", fontsize=10)
    ax.set_xlabel(f"labels (pool {result.pool})")
    ax.set_ylabel(f"test stance macro-F1 (n={result.test})")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_outputs(result: Result, out_dir: Path) -> None:
    """``curves-<model>.png`` and ``curves-<model>.json`` in ``out_dir``; their paths go into ``result``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    result.png = plot_curves(result, out_dir / f"curves-{result.model}.png")
    result.json = out_dir / f"curves-{result.model}.json"
    data = {k: v for k, v in asdict(result).items() if k not in ("png", "json")}
    data["mean"] = {o: [round(float(v), 6) for v in result.mean(o)] for o in result.orders}
    data["png"] = result.png.name
    tmp = result.json.with_name(f".{result.json.name}.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    tmp.replace(result.json)


def _where(path: Path | None) -> str:
    if path is None:
        return "-"
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def format_result(result: Result) -> str:
    """What the bench found, for the terminal: the target, what each order needs, a few points of the curves."""
    title = result.dataset + (f" / {result.target}" if result.target else "")
    lines = [f"{title}: {result.model}, pool {result.pool}, test {result.test}; seed set {result.seed_size}, "
             f"step {result.step}, diversity {result.diversity:g}, {result.repeats} repeat(s), {result.seconds:.0f} s",
             f"split: {result.split}", f"metric: {result.metric}"]
    lines += [f"note: {note}" for note in result.notes]
    lines.append(f"random's final macro-F1 (mean over repeats at {result.budget} labels): {result.target_f1:.3f}")
    width = max(len(o) for o in result.orders)
    random_needs = result.needed["random"]
    for order in result.orders:
        needed = result.needed[order]
        spread = ", ".join("never" if n is None else str(n) for n in result.needed_per_repeat[order])
        if needed is None:
            best = int(np.argmax(result.mean(order)))
            lines.append(f"{order:<{width}}  never reaches random's final macro-F1 {result.target_f1:.3f} within "
                         f"{result.budget} labels (best {result.mean(order)[best]:.3f} at {result.labels[best]}; "
                         f"per repeat: {spread})")
        elif order == "random":
            lines.append(f"{order:<{width}}  reaches its final macro-F1 {result.target_f1:.3f} with {needed} of "
                         f"{result.budget} labels (per repeat: {spread})")
        else:
            lines.append(f"{order:<{width}}  reaches random's final macro-F1 {result.target_f1:.3f} with {needed} of "
                         f"{result.budget} labels ({needed / result.budget:.0%} of the budget); random needs "
                         f"{random_needs}: ratio {result.ratio[order]:.0%} (per repeat: {spread})")
    # A few points of the mean curves, so the shape behind the numbers shows in the terminal too.
    picks = sorted({result.labels[int(round(q * (len(result.labels) - 1)))] for q in (0, 0.1, 0.2, 0.35, 0.5, 0.75, 1)})
    lines.append("")
    lines.append("labels  " + "  ".join(f"{o:>{max(len(o), 6)}}" for o in result.orders))
    for n in picks:
        j = result.labels.index(n)
        lines.append(f"{n:>6}  " + "  ".join(f"{result.mean(o)[j]:>{max(len(o), 6)}.3f}" for o in result.orders))
    lines.append(f"-> {_where(result.png)} and {_where(result.json)}")
    return "\n".join(lines)


def bench_active_learning(dataset: str, target: str | None = None, seed_size: int = 20, step: int = 10,
                          repeats: int = 3, model: str = "embed_logreg", max_labels: int | None = None,
                          out_dir: Path | None = None, progress: bool = True, root: Path | None = None,
                          log=print) -> Result:
    """What ``bench --active-learning DATASET`` runs: the replay, then its report printed with ``log``."""
    result = replay(dataset, target=target, seed_size=seed_size, step=step, repeats=repeats, model=model,
                    max_labels=max_labels, out_dir=out_dir, progress=progress, root=root, log=log)
    log(format_result(result))
    return result
