"""``python -m experiments <verb>``: a thin shell over the package's functions.

Each verb parses its arguments and calls one importable function. A
``UserError`` is printed as one line on stderr with exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from experiments import paths
from experiments.errors import UserError


def cmd_corpus(args: argparse.Namespace) -> None:
    from experiments.annotations import derive_gold, label_stats, load_paragraphs, write_gold
    from experiments.codebook import load_codebook
    from experiments.corpus import build_corpus

    if not args.stats:
        records = build_corpus(paths.SEEDS, paths.PARAGRAPHS)
        docs = len({r["doc_id"] for r in records})
        print(f"{len(records)} paragraphs from {docs} documents -> {paths.shown(paths.PARAGRAPHS)}")
    codebook = load_codebook()
    report = derive_gold(codebook, load_paragraphs())
    if not args.stats:
        write_gold(report)
        print(f"gold labels -> {paths.shown(paths.GOLD)}")
    for line in report.lines():
        print(line)
    if args.stats:
        print(label_stats(report.gold, codebook))


def cmd_codebook(args: argparse.Namespace) -> None:
    from experiments.codebook import load_codebook, render_markdown, write_markdown

    if args.check:
        current = paths.CODEBOOK_MD.read_text(encoding="utf-8") if paths.CODEBOOK_MD.exists() else ""
        if current != render_markdown(load_codebook()):
            raise UserError(f"{paths.shown(paths.CODEBOOK_MD)} is out of date with {paths.shown(paths.CODEBOOK)}; run `python -m experiments codebook`")
        print(f"{paths.shown(paths.CODEBOOK_MD)} is up to date")
        return
    print(f"codebook -> {paths.shown(write_markdown())}")


def cmd_run(args: argparse.Namespace) -> None:
    from experiments.run import run_experiment
    from experiments.summary import summarise_run

    run_dir = run_experiment(args.config, args.set or (), results=Path(args.results),
                             progress=not args.no_progress and sys.stderr.isatty(), smoke_mode=args.smoke)
    summarise_run(run_dir)
    print(paths.shown(run_dir))


def cmd_plot(args: argparse.Namespace) -> None:
    from experiments.plots import draw_plots

    for run_dir in args.run_dirs:
        for path in draw_plots(Path(run_dir)):
            print(paths.shown(path))


def cmd_table(args: argparse.Namespace) -> None:
    from experiments.rundir import latest_runs
    from experiments.summary import readme_results, results_table, update_readme

    runs = [Path(r) for r in args.run_dirs] or latest_runs(Path(args.results), tuple(args.configs))
    if args.readme:
        print(f"results table -> {paths.shown(update_readme(readme_results(runs)))}")
        return
    print(results_table(runs))


def cmd_headline(args: argparse.Namespace) -> None:
    from experiments.rundir import latest_runs
    from experiments.summary import headline_lines

    runs = [Path(r) for r in args.run_dirs] or latest_runs(Path(args.results), tuple(args.configs))
    print("\n".join(headline_lines(runs)))


def cmd_models(args: argparse.Namespace) -> None:
    from experiments.models import describe_models

    print("\n".join(describe_models()))


def cmd_bench(args: argparse.Namespace) -> None:
    if args.scale:
        from experiments.scale import bench_scale, save_results

        results = bench_scale(args.scale, run_dir=args.run, engines=args.engine or ["local", "ray"],
                              models=args.scale_model or ["tfidf_logreg", "embed_logreg"])
        print(f"-> {paths.shown(save_results(results))}")
        return
    if args.active_learning:
        from experiments.activelearning import bench_active_learning

        bench_active_learning(args.active_learning, target=args.target, seed_size=args.seed_size, step=args.step,
                              repeats=args.repeats, model=args.learner, max_labels=args.max_labels,
                              progress=sys.stderr.isatty())
        return
    from experiments.bench import bench_import, bench_overhead, run_bench

    if args.import_rows:
        bench_import(args.import_rows)
        return
    if args.overhead:
        bench_overhead(Path(args.overhead))
        return

    run_bench(n=args.n, batch_size=args.batch_size, rounds=args.rounds, model=args.model, device=args.device,
              precision=args.precision)


def cmd_predict(args: argparse.Namespace) -> None:
    from experiments.inputs import TableColumns, open_inputs
    from experiments.predict import predict_files, predict_report

    ray = args.engine == "ray"
    # Options of one engine given to the other are refused, not ignored.
    if ray:
        if not args.out:
            raise UserError("--engine ray needs --out FOLDER: it writes Parquet shards and a manifest there")
        if args.format not in (None, "parquet"):
            raise UserError(f"--format {args.format}: --engine ray writes Parquet shards; leave out --format")
        if args.chunk_size is not None:
            raise UserError("--chunk-size works with --engine local; with --engine ray, use --batch-size")
        if args.review_queue is not None:
            raise UserError("--review-queue works with --engine local; with --engine ray, "
                            "select the needs_review rows from the shards")
    else:
        for flag, value in (("--address", args.address), ("--num-workers", args.num_workers),
                            ("--batch-size", args.batch_size), ("--shard-rows", args.shard_rows)):
            if value is not None:
                raise UserError(f"{flag} works with --engine ray; the local engine takes --chunk-size")
    columns = TableColumns(text=args.text_column, id=args.id_column, doc=args.doc_column)
    out = Path(args.out) if args.out else None
    with open_inputs(args.inputs, columns, args.stdin_format) as inputs:
        try:
            progress = sys.stderr.isatty() and not args.no_progress
            if ray:
                from experiments.distributed import BATCH_SIZE, SHARD_ROWS, predict_ray

                summary = predict_ray(args.run_dir, inputs, out, model=args.model, num_workers=args.num_workers,
                                      batch_size=BATCH_SIZE if args.batch_size is None else args.batch_size,
                                      shard_rows=SHARD_ROWS if args.shard_rows is None else args.shard_rows,
                                      address=args.address, progress=progress, min_confidence=args.min_confidence,
                                      similarity=not args.no_similarity)
            else:
                summary = predict_files(args.run_dir, inputs, out=out, fmt=args.format, model=args.model,
                                        chunk_size=256 if args.chunk_size is None else args.chunk_size,
                                        progress=progress, min_confidence=args.min_confidence,
                                        review_queue=Path(args.review_queue) if args.review_queue else None,
                                        similarity=not args.no_similarity)
        except KeyboardInterrupt:
            if out is None:
                raise
            kept = "shards are kept" if ray else "chunks are kept"
            raise KeyboardInterrupt(f"interrupted; the finished {kept}, run the same command again to resume {paths.shown(out)}") from None
    if out is not None:
        resumed = f" (resumed after {summary.resumed_from})" if summary.resumed_from else ""
        models = ", ".join(f"{task}: {name}" for task, name in summary.models.items())
        shards = " (Parquet shards and _manifest.json)" if ray else ""
        print(f"{summary.paragraphs} paragraphs{resumed} labelled by {paths.shown(summary.run_dir)} [{models}] -> {paths.shown(out)}{shards}",
              file=sys.stderr)
    print(predict_report(summary, args.min_confidence, args.review_queue), file=sys.stderr)


def cmd_annotate(args: argparse.Namespace) -> None:
    from experiments.annotate import gold_notice, start_session
    from experiments.app import check_port, serve
    from experiments.codebook import load_codebook

    check_port(args.host, args.port)
    codebook, data = load_codebook(), paths.DataDir(Path(args.data))
    if args.review:
        from experiments.review import ReviewSession

        if not args.adjudicator:
            raise UserError("--review needs --adjudicator NAME: the name recorded with each decision")
        serve(ReviewSession(args.adjudicator, codebook, data), host=args.host, port=args.port)
        return
    if not args.annotator:
        raise UserError("annotate needs --annotator NAME (or --review --adjudicator NAME to settle disagreements)")
    session = start_session(args.annotator, codebook, data, source=args.source, suggest=args.suggest,
                            order=args.order, seed=args.seed, progress=sys.stderr.isatty(),
                            learn=None if args.learn == "off" else args.learn, retrain_every=args.retrain_every,
                            blind=args.blind, practice=args.practice, device=args.device)
    if args.practice:
        print(f"practice: a copy of the corpus in {session.data.root}; nothing you label reaches {args.data} or gold",
              flush=True)
    else:
        for line in gold_notice(data, codebook, session.queue):
            print(f"note: {line}", flush=True)
    serve(session, host=args.host, port=args.port)


def cmd_export(args: argparse.Namespace) -> None:
    from experiments.codebook import load_codebook
    from experiments.export import export_gold

    summary = export_gold(Path(args.out), load_codebook(), gold_path=Path(args.gold), split=args.split,
                          overwrite=args.force)
    print("\n".join(summary.lines(paths.shown)))


def _agreement_inputs(args: argparse.Namespace):
    from experiments.annotate import read_corpus
    from experiments.codebook import load_codebook

    data = paths.DataDir(Path(args.data))
    return load_codebook(), read_corpus(data), data


def cmd_agreement(args: argparse.Namespace) -> None:
    import json

    from experiments.agreement import compute_agreement, format_agreement, report_json

    codebook, paragraphs, data = _agreement_inputs(args)
    report = compute_agreement(codebook, paragraphs, data.annotations, data.adjudications)
    print(json.dumps(report_json(report), indent=2, ensure_ascii=False) if args.json else format_agreement(report, codebook))


def cmd_adjudicate(args: argparse.Namespace) -> None:
    from experiments.adjudication import adjudicate_interactive, parse_frames, parse_stance, record_adjudication, resolve_choice
    from experiments.agreement import describe_labels

    codebook, paragraphs, data = _agreement_inputs(args)
    if args.paragraph is None:
        if args.take or args.stance or args.frames is not None or args.reason:
            raise UserError("--take, --stance, --frames and --reason need --paragraph ID; without it adjudicate asks interactively")
        adjudicate_interactive(codebook, paragraphs, args.adjudicator, annotations_dir=data.annotations,
                               adjudications=data.adjudications)
        return
    where = args.paragraph
    stance = parse_stance(codebook, args.stance, where) if args.stance else None
    frames = parse_frames(codebook, args.frames, where) if args.frames is not None else None
    stance, frames = resolve_choice(codebook, paragraphs, args.paragraph, take=args.take, stance=stance, frames=frames,
                                    annotations_dir=data.annotations)
    record_adjudication(codebook, paragraphs, args.paragraph, stance, frames, args.reason or "", args.adjudicator,
                        adjudications=data.adjudications)
    print(f"recorded {args.paragraph}: {describe_labels(stance, frames)} -> {paths.shown(data.adjudications)}")


def cmd_import(args: argparse.Namespace) -> None:
    from experiments.importer import ImportOptions, format_summary, import_table

    label_map = {}
    for assignment in args.map or []:
        old, sep, new = assignment.partition("=")
        if not sep or not old or not new:
            raise UserError(f"--map {assignment}: both sides must be non-empty, e.g. --map FAVOR=favor")
        label_map[old] = new
    split = lambda text: tuple(x.strip() for x in text.split(",") if x.strip()) if text else ()
    delimiter = "\t" if args.delimiter in ("\\t", "tab", "TAB") else args.delimiter
    options = ImportOptions(
        text_column=args.text_column, stance_column=args.stance_column, frames_column=args.frames_column,
        frame_columns=split(args.frame_columns), frames_separator=args.frames_separator,
        target_column=args.target_column, split_column=args.split_column, group_column=args.group_column,
        id_column=args.id_column, encoding=args.encoding, delimiter=delimiter, label_map=label_map,
        stance_labels=split(args.stance_labels), frame_labels=split(args.frame_labels),
    )
    summary = import_table(Path(args.file), args.name, options, root=paths.IMPORTED, force=args.force)
    print(format_summary(summary))
    print(f"-> {paths.shown(summary.path)}; use it in a config with `data: {{source: {summary.name}}}`")


def cmd_reproduce(args: argparse.Namespace) -> int:
    from experiments.reproduce import reproduce

    outcome = reproduce(Path(args.run_dir), results=Path(args.results) if args.results else None,
                        progress=sys.stderr.isatty(), log=lambda line: print(line, file=sys.stderr))
    print("\n".join(outcome.lines()))
    return 0 if outcome.identical else 1


def cmd_report(args: argparse.Namespace) -> None:
    from experiments.report import write_report
    from experiments.rundir import latest_runs

    runs = [Path(r) for r in args.run_dirs] or latest_runs(Path(args.results), tuple(args.configs))
    html, markdown = write_report(runs, Path(args.out) if args.out else None)
    print(f"report -> {paths.shown(html)} and {paths.shown(markdown)}")


ARGUMENT_STYLE = """\
the same argument style in every verb:
  positional arguments name what the verb acts on: a config file (run), run directories
    (report, table, headline, plot, reproduce, predict), input files (predict, import)
  --results DIR   the results folder: run writes run directories there, report, table and
                  headline look there for --config's runs, reproduce --results keeps its new run there
  --config NAME   the newest run of that config in --results (report, table, headline; repeatable)
  --data DIR      the data folder of annotate, agreement and adjudicate (default: data/)

run `python -m experiments VERB --help` for a verb's options and examples"""


def _version() -> str:
    """The installed package's version, from its metadata."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("iran-intervention-experiments")
    except PackageNotFoundError:
        return "unknown (the package is not installed; run `make install`)"


def _verb(verbs, name: str, summary: str, *examples: str) -> argparse.ArgumentParser:
    """A verb's parser: ``summary`` is its one-line description, ``examples`` the command lines its --help ends with."""
    return verbs.add_parser(
        name, help=summary, description=summary[0].upper() + summary[1:] + ".",
        epilog="examples:\n" + "\n".join(f"  python -m experiments {e}" for e in examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _results_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--results", default=str(paths.RESULTS), metavar="DIR", help=f"{what} (default: results/)")


def _select_runs(p: argparse.ArgumentParser) -> None:
    """RUN_DIRs, or the newest run of each ``--config NAME`` in ``--results``: report, table and headline."""
    p.add_argument("run_dirs", nargs="*", metavar="RUN_DIR", help="run directories (default: as --config selects)")
    p.add_argument("--config", dest="configs", action="append", default=[], metavar="NAME",
                   help="the newest run of this config (repeatable; default: every config with runs)")
    _results_option(p, "where --config looks for runs")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m experiments", description=__doc__.splitlines()[0],
                                     epilog=ARGUMENT_STYLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = _verb(verbs, "corpus", "segment seeds/ into data/paragraphs.jsonl and derive data/gold.jsonl",
              "corpus",
              "corpus --stats")
    p.add_argument("--stats", action="store_true", help="only print the gold label distribution per document")
    p.set_defaults(func=cmd_corpus)

    p = _verb(verbs, "codebook", "render configs/codebook.yaml as data/CODEBOOK.md",
              "codebook",
              "codebook --check")
    p.add_argument("--check", action="store_true", help="fail if data/CODEBOOK.md is out of date")
    p.set_defaults(func=cmd_codebook)

    p = _verb(verbs, "run", "run an experiment config; prints the run directory last",
              "run configs/default.yaml",
              "run configs/default.yaml --smoke",
              "run configs/stance_baselines.yaml --set models.2.params.C=0.5 --results results/reference")
    p.add_argument("config", type=Path, help="a YAML file in configs/")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. models.0.params.C=0.5")
    _results_option(p, "where the run directory goes")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--smoke", action="store_true", help="shrink the experiment to run in seconds (2 folds, tiny training)")
    p.set_defaults(func=cmd_run)

    p = _verb(verbs, "models", "list the registered models and their parameters",
              "models")
    p.set_defaults(func=cmd_models)

    p = _verb(verbs, "bench", "inference throughput of the transformer models against a plain transformers pipeline",
              "bench",
              "bench --import-rows 100000",
              "bench --overhead configs/stance_baselines.yaml",
              "bench --scale 100000 --run results/default")
    p.add_argument("--n", type=int, default=240, help="paragraphs to label (the corpus, cycled)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--rounds", type=int, default=3, help="timed rounds; the best is reported")
    p.add_argument("--model", default="all-MiniLM-L6-v2", help="packaged model name or a local model directory")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"], help="inference precision of the project's path")
    p.add_argument("--import-rows", type=int, metavar="N", help="instead: time importing a generated N-row table")
    p.add_argument("--overhead", metavar="CONFIG", help="instead: time CONFIG without and with its learning curve")
    p.add_argument("--scale", type=int, metavar="N", help="instead: label N generated paragraphs with predict, locally and on Ray, and report rows/s and peak memory")
    p.add_argument("--run", default="results/default", help="with --scale: the run whose saved models label the rows (default: results/default)")
    p.add_argument("--engine", action="append", choices=["local", "ray"], help="with --scale: only this engine (repeatable; default: both)")
    p.add_argument("--scale-model", action="append", metavar="MODEL", help="with --scale: a saved model to use (repeatable; default: tfidf_logreg and embed_logreg)")
    p.add_argument("--active-learning", metavar="DATASET",
                   help="instead: replay labelling an imported dataset with its gold labels; "
                        "does uncertainty order reach random order's final macro-F1 with fewer labels?")
    p.add_argument("--target", help="with --active-learning: the stance target (default: the one with the most rows)")
    p.add_argument("--seed-size", type=int, default=20, help="with --active-learning: random labels to start from (default: 20)")
    p.add_argument("--step", type=int, default=10, help="with --active-learning: labels added between retrainings (default: 10)")
    p.add_argument("--repeats", type=int, default=3, help="with --active-learning: seeds to average the curves over (default: 3)")
    p.add_argument("--learner", default="embed_logreg", choices=["embed_logreg", "codebook_logreg"],
                   help="with --active-learning: the model that learns while labelling (default: embed_logreg)")
    p.add_argument("--max-labels", type=int, metavar="N", help="with --active-learning: the label budget (default: the whole pool)")
    p.set_defaults(func=cmd_bench)

    p = _verb(verbs, "predict", "label new paragraphs with the models a run saved (final_fit: true)",
              "predict results/default new_article.txt",
              "predict results/default articles/ --out labels.csv --min-confidence 0.6 --review-queue review.jsonl",
              "predict results/default archive/ --engine ray --out labels/")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory, or a config's results folder (its newest run with models)")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help=".txt/.md documents, .jsonl/.csv/.tsv/.parquet tables, folders, or - for stdin")
    p.add_argument("--out", help="output file (with --engine ray: a folder); unfinished output is resumed on the next call "
                                 "(default: standard output)")
    p.add_argument("--format", choices=["jsonl", "csv", "parquet"], help="output format (default: from --out's suffix, else jsonl)")
    p.add_argument("--model", help="a saved model's name (default: the run's best per task)")
    p.add_argument("--text-column", default="text", help="text column of .jsonl/.csv/.parquet input (default: text)")
    p.add_argument("--id-column", default="id", help="paragraph id column, if any (default: id; else FILE:LINE)")
    p.add_argument("--doc-column", default="doc_id", help="document id column, if any (default: doc_id; else the file name)")
    p.add_argument("--stdin-format", default="text", choices=["text", "jsonl", "csv", "parquet"],
                   help="what - reads (default: text, a document)")
    p.add_argument("--chunk-size", type=int, help="local engine: paragraphs labelled and saved per step (default: 256)")
    p.add_argument("--min-confidence", type=float, metavar="P", help="mark rows whose calibrated confidence is below P as needs_review")
    p.add_argument("--review-queue", metavar="FILE.jsonl", help="also write the needs_review rows here, as a table `annotate --source` takes")
    p.add_argument("--no-similarity", action="store_true", help="skip the similarity to the training paragraphs (faster with TF-IDF models)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: this process (default); ray: Ray workers write Parquet shards and _manifest.json into the --out folder")
    p.add_argument("--address", help="--engine ray: join this Ray cluster (auto, or HEAD:6379 from `ray start --head`); "
                                     "default: start Ray on this machine")
    p.add_argument("--num-workers", type=int, metavar="N", help="--engine ray: model-holding workers, one CPU each (default: all of Ray's CPUs)")
    p.add_argument("--batch-size", type=int, metavar="N", help="--engine ray: paragraphs per model call in a worker (default: 256)")
    p.add_argument("--shard-rows", type=int, metavar="N", help="--engine ray: paragraphs per shard, the unit of work and of resuming (default: 10000)")
    p.set_defaults(func=cmd_predict)

    p = _verb(verbs, "annotate", "open the labelling app in the browser (one annotator per process)",
              "annotate --annotator maryam --practice",
              "annotate --annotator maryam --source new_article.txt --suggest results/default",
              "annotate --review --adjudicator lead")
    p.add_argument("--annotator", help="your name: letters, digits, '_' or '-'; decisions go to data/annotations/NAME.jsonl")
    p.add_argument("--source", action="append", metavar="FILE|DIR", help="new documents or tables to add to the corpus and label (repeatable); default: the whole corpus")
    p.add_argument("--suggest", metavar="RUN_DIR", help="pre-select a saved model's labels (a run with final_fit: true, or a config's results folder)")
    p.add_argument("--order", default="document", choices=["document", "random", "uncertain"], help="queue order (uncertain: least sure first, re-ranked as the model learns)")
    p.add_argument("--learn", default="codebook_logreg", choices=["codebook_logreg", "embed_logreg", "off"], help="the model retrained while you label (default: codebook_logreg; off: none)")
    p.add_argument("--retrain-every", type=int, default=5, metavar="N", help="retrain after every N labels (default: 5)")
    p.add_argument("--blind", type=float, default=0.0, metavar="SHARE", help="share of paragraphs shown without suggestions, to measure anchoring (e.g. 0.2)")
    p.add_argument("--practice", action="store_true", help="label a temporary copy of the corpus: nothing reaches data/ or gold")
    p.add_argument("--review", action="store_true", help="settle disagreements in the app instead of labelling (with --adjudicator)")
    p.add_argument("--adjudicator", help="with --review: your name, recorded with each decision")
    p.add_argument("--device", default="auto", help="where the learning model runs: auto, cpu, cuda")
    p.add_argument("--seed", type=int, default=0, help="seed of --order random, of the blind items and of the model")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    p.add_argument("--data", default=str(paths.DATA), metavar="DIR", help="data folder with paragraphs.jsonl and annotations/ (default: data/)")
    p.set_defaults(func=cmd_annotate)

    p = _verb(verbs, "export", "write data/gold.jsonl as a Hugging Face DatasetDict, Parquet and a dataset card",
              "export",
              "export --out exports/gold --split none --force")
    p.add_argument("--out", default=str(paths.EXPORTS / "gold"), help="export folder (default: exports/gold)")
    p.add_argument("--gold", default=str(paths.GOLD), help="gold labels to export (default: data/gold.jsonl)")
    p.add_argument("--split", default="document", choices=["document", "none"],
                   help="document: add a leave-one-document-out fold column (default); none: no split column")
    p.add_argument("--force", action="store_true", help="replace an earlier export in --out")
    p.set_defaults(func=cmd_export)

    p = _verb(verbs, "agreement", "inter-annotator agreement: Cohen's kappa per pair, Krippendorff's alpha, disagreements",
              "agreement",
              "agreement --json")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--data", default=str(paths.DATA), metavar="DIR", help="data folder (default: data/)")
    p.set_defaults(func=cmd_agreement)

    p = _verb(verbs, "adjudicate", "settle disagreements into gold (interactive, or one paragraph with --paragraph)",
              "adjudicate --adjudicator lead",
              "adjudicate --adjudicator lead --paragraph parliament-003 --take amir --reason 'names the strikes'")
    p.add_argument("--adjudicator", required=True, help="your name, recorded with each decision")
    p.add_argument("--paragraph", metavar="ID", help="settle this paragraph without prompting")
    p.add_argument("--take", metavar="ANNOTATOR", help="with --paragraph: take this annotator's labels")
    p.add_argument("--stance", help="with --paragraph: the stance (name or key 1-4)")
    p.add_argument("--frames", help="with --paragraph: frames as names or letters, comma-separated ('' for none)")
    p.add_argument("--reason", help="with --paragraph: why (required)")
    p.add_argument("--data", default=str(paths.DATA), metavar="DIR", help="data folder (default: data/)")
    p.set_defaults(func=cmd_adjudicate)

    p = _verb(verbs, "import", "turn a labelled table (CSV, TSV, JSON Lines, Parquet) into a dataset a config can name",
              "import semeval2016.tsv --name semeval2016 --encoding latin-1 --text-column Tweet --stance-column Stance",
              "import posts.csv --name posts --stance-column label --map FAVOR=favor --map AGAINST=against")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--name", required=True, help="dataset name, used as data.source in configs")
    p.add_argument("--text-column", default="text")
    p.add_argument("--stance-column", help="one stance label per row")
    p.add_argument("--frames-column", help="frames: a list, or labels joined by --frames-separator")
    p.add_argument("--frame-columns", help="comma-separated 0/1 indicator columns, one per frame")
    p.add_argument("--frames-separator", default=";")
    p.add_argument("--target-column", help="stance target (for datasets with several targets)")
    p.add_argument("--split-column", help="train/dev/test column, for the split protocol")
    p.add_argument("--group-column", help="group (e.g. document) column, for lodo and group_kfold")
    p.add_argument("--id-column", help="row id column (default: numbered rows)")
    p.add_argument("--encoding", default="utf-8", help="e.g. latin-1")
    p.add_argument("--delimiter", help="CSV delimiter (default: ',' for .csv, tab for .tsv)")
    p.add_argument("--map", action="append", metavar="OLD=NEW", help="rename a label or split value (repeatable), e.g. FAVOR=favor")
    p.add_argument("--stance-labels", help="comma-separated allowed stance labels (after --map); others are errors")
    p.add_argument("--frame-labels", help="comma-separated allowed frame labels (after --map)")
    p.add_argument("--force", action="store_true", help="replace an imported dataset of the same name")
    p.set_defaults(func=cmd_import)

    p = _verb(verbs, "reproduce", "re-run a run from its saved config and check that every metric is identical",
              "reproduce results/default/RUN_ID",
              "reproduce results/default/RUN_ID --results results")
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run directory to re-run")
    p.add_argument("--results", metavar="DIR",
                   help="keep the new run in this results folder, as `run --results DIR` would (default: a scratch folder, removed)")
    p.set_defaults(func=cmd_reproduce)

    p = _verb(verbs, "report", "one self-contained HTML page (and a Markdown twin) comparing runs",
              "report --config default --config default_kfold --out results/report.html",
              "report results/default/RUN_ID results/default_kfold/RUN_ID")
    _select_runs(p)
    p.add_argument("--out", help="FILE.html (a FILE.md is written beside it); default: report.html in the first run directory")
    p.set_defaults(func=cmd_report)

    p = _verb(verbs, "plot", "redraw the plots of run directories from their saved predictions",
              "plot results/default/RUN_ID")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.set_defaults(func=cmd_plot)

    p = _verb(verbs, "headline", "the headline numbers: per task, the model for new text with its score, CI, n and protocol",
              "headline --config default --config default_kfold",
              "headline --results results/reference --config default")
    _select_runs(p)
    p.set_defaults(func=cmd_headline)

    p = _verb(verbs, "table", "print the results table of runs (default: newest run of each config)",
              "table --config default",
              "table --readme --results results/reference")
    _select_runs(p)
    p.add_argument("--readme", action="store_true", help="write the table into README.md between its markers")
    p.set_defaults(func=cmd_table)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status = args.func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(exc.args[0] if exc.args else "interrupted; nothing was written for the unfinished step", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader stopped early (`... | head`): it has what it asked for. Point stdout at /dev/null so the
        # interpreter's final flush cannot fail again, and end as quietly as other command-line tools.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return status or 0
