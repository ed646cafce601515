"""``sa2va-i-eval``: J&F of Sa2VA-i on Ref-DAVIS17, MeViS, Ref-YouTube-VOS or the synthetic recording.

    sa2va-i-eval --dataset mevis --root data/mevis --model kumuji/Sa2VA-i-1B \
        --num-frames 8 --device cuda --dtype bfloat16 --out eval/mevis_8f
    torchrun --nproc-per-node 8 -m sa2va_i_ros.cli.evaluate ...same options...   # one rank per GPU
    sa2va-i-eval ... --grid num_frames=5,8 sampling=uniform,first prompt_frames=all,first

For each expression the model segments every frame of its video; J and F are
means over the frames, the dataset's J and F means over the expressions, J&F
their mean (docs/EVALUATION.md). Each rank logs one line per expression as it
finishes to OUT/parts/rank-<r>.jsonl; rank 0 keeps OUT/summary.json and
OUT/summary.md up to date and at the end merges the parts into
OUT/results.jsonl (one line per expression, dataset order, identical for any
number of ranks) and writes OUT/report/index.html. --resume keeps what is
done, whatever the number of ranks before. Splits without public ground truth
(Ref-YouTube-VOS valid, MeViS valid) get OUT/Annotations/<video>/<eid>/<frame>.png
for the benchmark's server instead; --save-masks writes those for any split.
With --grid, each setting gets its own folder OUT/<setting>/ and OUT/ablation.md
the table of all of them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import signal
import sys
import time
import uuid
from pathlib import Path

from sa2va_i_ros.errors import Sa2VAError
from sa2va_i_ros.offline.evaluation import ablation
from sa2va_i_ros.offline.evaluation.datasets import DATASETS, DEFAULT_SPLIT, DatasetError, Expression, load_dataset
from sa2va_i_ros.offline.evaluation.distributed import BACKENDS, Dist, DistError, Markers
from sa2va_i_ros.offline.evaluation.monitor import Monitor, failure_text
from sa2va_i_ros.offline.evaluation.overlays import pick_extremes
from sa2va_i_ros.offline.evaluation.settings import (
    EvalSettings,
    SettingsError,
    add_arguments,
    expand_grid,
    from_args,
    knobs,
    parse_grid,
)
from sa2va_i_ros.offline.evaluation.sharding import shard
from sa2va_i_ros.offline.evaluation.store import Merged, RunFolder, write_atomic
from sa2va_i_ros.offline.evaluation.summary import headline, summarize, write_summary
from sa2va_i_ros.offline.evaluation.worker import Cell, LoadFailed, VideoSegmenter, Worker

# Options that change the numbers besides the settings: a resumed run must keep them.
RUN_OPTIONS = ("dataset", "split", "model", "revision", "dtype", "original_sam2", "q_frame_file")


class SegmenterUnavailable(RuntimeError):
    """The inference pipeline cannot be imported."""


class UsageError(Exception):
    """The output folder does not fit the request (exists without --resume, other options)."""


class Terminated(BaseException):
    """SIGTERM (torchrun stopping the ranks): rank 0 still merges what is done."""


def result_options() -> tuple[str, ...]:
    return RUN_OPTIONS + tuple(knobs())


def load_segmenter(model: str, device: str = "cpu", dtype: str = "float32", original_sam2: str | None = None,
                   **load_settings) -> VideoSegmenter:
    """The project's offline pipeline for the checkpoint's kind (Sa2VA-i or SaSaSa2VA, from config.json).

    ``tracker_model`` / ``tracker_weights`` (settings): the propagation model (default the
    checkpoint's SAM2; another applies to Sa2VA / Sa2VA-i checkpoints only, docs/TRACKER.md).
    """
    try:
        # both pipelines implement VideoSegmenter; they import torch and sam2, which a bare install may lack
        from sa2va_i_ros.offline.pipeline import load_video_pipeline
        from sa2va_i_ros.tracking import TrackerChoice
    except ImportError as exc:
        raise SegmenterUnavailable(f"the inference pipeline (sa2va_i_ros.offline.pipeline.VideoPipeline) cannot "
                                   f"be imported: {exc}") from exc
    tracker = TrackerChoice(load_settings.pop("tracker_model", None) or "checkpoint",
                            load_settings.pop("tracker_weights", None) or "")
    backend = (load_settings.pop("tracker_backend", None) or "torch", load_settings.pop("tracker_onnx_dir", None) or "")
    return load_video_pipeline(model, device=device, dtype=dtype, original_sam2=original_sam2, tracker=tracker,
                               tracker_backend=backend, **load_settings)


def load_q_frames(path: str) -> dict:
    """SaSaSa2VA's selected_frames.json: {video: {"selected_frames": {eid: [100 frame indices]}}}."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return {(video, str(eid)): list(ids) for video, entry in data.items()
                for eid, ids in entry["selected_frames"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"{path}: not a selected_frames.json ({exc})") from exc


def q_frame_option(path: str | None, selected: dict | None):
    """The per-expression ``q_frame`` selection of SaSaSa2VA's q_frame mode (nothing for other settings)."""

    def extra(settings: EvalSettings, expr: Expression) -> dict:
        if settings.mode != "q_frame":
            return {}
        key = (expr.video, str(expr.eid))
        if selected is None or key not in selected:
            raise ValueError(f"{path} has no selected frames for {expr.video}/{expr.eid}")
        return {"q_frame": selected[key]}

    return extra


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="sa2va-i-eval", description=__doc__.split("\n")[0])
    p.add_argument("--dataset", required=True, choices=DATASETS)
    p.add_argument("--root", required=True, help="dataset folder (layouts in docs/EVALUATION.md)")
    p.add_argument("--model", required=True, help="checkpoint directory or Hugging Face hub id")
    p.add_argument("--split", default=None,
                   help="default: valid (ref-davis17, ref-youtube-vos), valid_u (mevis); none for synthetic")
    add_arguments(p)  # --num-frames, --sampling, --prompt-frames, ... (sa2va_i_ros/offline/evaluation/settings.py)
    p.add_argument("--grid", nargs="+", metavar="NAME=V1,V2", default=None,
                   help=f"evaluate every combination (one model load per distinct model); settings: "
                        f"{', '.join(knobs())}; e.g. --grid num_frames=5,8 sampling=uniform,first")
    p.add_argument("--q-frame-file", default=None,
                   help="--mode q_frame: selected_frames.json ({video: {selected_frames: {eid: [100 ids]}}})")
    p.add_argument("--device", default="cpu",
                   help="cpu, cuda or cuda:N; under torchrun, cuda means cuda:LOCAL_RANK")
    p.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"))
    p.add_argument("--original-sam2", default=None, help="SAM 2.0 safetensors (plain Sa2VA checkpoints only)")
    # as the node's model_revision and lm_devices parameters (ros/parameters.py): handed to the loader as given
    p.add_argument("--revision", default=None, help="hub revision (branch, tag or commit) of a hub model")
    p.add_argument("--lm-devices", default=None,
                   help="spread the language model's layers over these devices, e.g. cuda:0,cuda:1 (every rank "
                        "uses the same list: under torchrun give each rank its own machine, --nproc-per-node 1)")
    p.add_argument("--limit", type=_positive, default=None, help="only the first K expressions (smoke runs)")
    p.add_argument("--out", default="eval_out", help="output folder (default eval_out)")
    p.add_argument("--resume", action="store_true", help="keep finished expressions (any number of ranks before)")
    p.add_argument("--save-masks", action="store_true", help="also write prediction PNGs when scoring")
    p.add_argument("--no-report", action="store_true", help="skip OUT/report/ (plots and overlays)")
    p.add_argument("--report-examples", type=int, default=3, metavar="K",
                   help="overlays of the K best and K worst expressions in the report (default 3)")
    p.add_argument("--dist-backend", choices=BACKENDS, default="auto",
                   help="torchrun only: auto = nccl on CUDA, gloo on CPU")
    p.add_argument("--dist-timeout", type=_seconds, default=600.0,
                   help="torchrun only: seconds a start-up collective may wait for the other ranks (600)")
    p.add_argument("--stall-timeout", type=_seconds, default=1800.0,
                   help="torchrun only: rank 0 stops waiting when no rank made progress for this long (1800)")
    return p.parse_args(argv)


def make_cells(args: argparse.Namespace, split: str) -> tuple[list[Cell], list[str]]:
    """The settings to evaluate and their folders; and the grid's axes ([] without --grid)."""
    base = from_args(args)
    axes = parse_grid(args.grid) if args.grid else []
    settings = expand_grid(base, axes) if axes else [base]
    out, names = Path(args.out), [n for n, _ in axes]
    cells = []
    for s in settings:
        options = {"dataset": args.dataset, "split": split, "root": str(args.root), "model": args.model,
                   **s.as_dict(), "device": args.device, "dtype": args.dtype, "original_sam2": args.original_sam2,
                   "revision": args.revision, "lm_devices": args.lm_devices, "limit": args.limit,
                   "q_frame_file": args.q_frame_file}
        folder = RunFolder(out / s.slug(names) if axes else out)
        cells.append(Cell(s, folder, options, s.slug(names) if axes else "run"))
    return cells, names


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    split = DEFAULT_SPLIT[args.dataset] if args.split is None else args.split
    try:
        dist = Dist.from_env()
        cells, axes = make_cells(args, split)
        if any(c.settings.mode == "q_frame" for c in cells) != (args.q_frame_file is not None):
            raise UsageError("--mode q_frame and --q-frame-file go together")
        args.q_frames = load_q_frames(args.q_frame_file) if args.q_frame_file else None
    except (DistError, SettingsError, UsageError) as exc:
        print(f"sa2va-i-eval: {exc}", file=sys.stderr)
        return 2
    try:
        return Evaluation(args, split, cells, axes, dist, started).run()
    finally:
        dist.close()


class Evaluation:
    def __init__(self, args, split: str, cells: list[Cell], axes: list[str], dist: Dist, started: float):
        self.args, self.split, self.cells, self.axes, self.dist = args, split, cells, axes, dist
        self.started, self.out = started, Path(args.out)
        self.expressions: list[Expression] = []
        self.device = dist.device_for(args.device)
        self.timing = {"load_s": 0.0}
        self.load_report: dict | None = None  # the loader's report of rank 0's first model (placement, dtypes)

    def say(self, text: str) -> None:
        who = f"sa2va-i-eval[rank {self.dist.rank}]" if self.dist.world_size > 1 else "sa2va-i-eval"
        print(f"{who}: {text}", file=sys.stderr, flush=True)

    # -- start-up: every rank ------------------------------------------------------------------
    def run(self) -> int:
        dist = self.dist
        try:
            dist.init(self.args.dist_backend, self.args.dist_timeout, self.device)
            error = self.load_expressions()
            fingerprint = hashlib.sha1("\n".join(e.key for e in self.expressions).encode()).hexdigest()
            views = dist.all_gather((error, fingerprint))
            if any(e for e, _ in views):
                if dist.is_main:
                    for rank, (e, _) in enumerate(views):
                        if e:
                            print(f"sa2va-i-eval: {f'rank {rank}: ' if dist.world_size > 1 else ''}{e}",
                                  file=sys.stderr)
                return 2
            if len({f for _, f in views}) > 1:
                if dist.is_main:
                    self.say("the ranks read different expression lists: give every rank the same --root data")
                return 2
            plan = self.prepare() if dist.is_main else None
            plan = dist.broadcast(plan)
            if "error" in plan:
                if dist.is_main:
                    self.say(plan["error"])
                return 2
            markers = Markers(self.out / "parts", plan["run_id"])
            seen = dist.all_gather(markers.read(self.out / "parts" / "run.json") is not None)
            if not all(seen):
                if dist.is_main:
                    blind = ", ".join(str(r) for r, ok in enumerate(seen) if not ok)
                    self.say(f"rank(s) {blind} cannot read {self.out / 'parts' / 'run.json'}: --out must be one "
                             "folder shared by all ranks (a shared file system when they run on several machines)")
                return 2
        except DistError as exc:
            self.say(str(exc))
            return 2
        return self.work(plan, markers)

    def load_expressions(self) -> str | None:
        try:
            self.expressions = load_dataset(self.args.dataset, self.args.root, self.split)[: self.args.limit]
            if not self.expressions:
                raise DatasetError(f"{self.args.root}: the dataset lists no expressions")
        except DatasetError as exc:
            return str(exc)
        return None

    # -- rank 0: what is left, and who does it ---------------------------------------------------
    def prepare(self) -> dict:
        """Check and merge each setting's folder, list what is left, split it over the ranks."""
        try:
            order = [e.key for e in self.expressions]
            items, self.prior = [], []
            for ci, cell in enumerate(self.cells):
                merged = self.prepare_folder(cell, order)
                self.prior.append(merged)
                done = {k for k, r in merged.records.items() if "error" not in r}
                items += [(ci, ei) for ei, e in enumerate(self.expressions) if e.key not in done]
                write_summary(cell.folder.path, self.summary(ci, merged.records, evaluated=0))
            costs = [len(self.expressions[ei].frames) for _, ei in items]
            load_order = {}
            for ci, cell in enumerate(self.cells):
                load_order.setdefault(cell.settings.load_key(), ci)
            cell_order = [load_order[cell.settings.load_key()] for cell in self.cells]
            work = []
            for part in shard(costs, self.dist.world_size):
                mine = [items[i] for i in part]
                mine.sort(key=lambda it: (cell_order[it[0]], it[0], it[1]))  # one model load per distinct model
                work.append(mine)
            run_id = uuid.uuid4().hex
            parts = self.out / "parts"
            parts.mkdir(parents=True, exist_ok=True)
            Markers(parts, run_id).clear()
            write_atomic(parts / "run.json", json.dumps({"run_id": run_id, "world_size": self.dist.world_size,
                                                         "items": len(items), "time": time.time()}))
            return {"run_id": run_id, "work": work}
        except (UsageError, OSError) as exc:
            return {"error": str(exc)}

    def prepare_folder(self, cell: Cell, order: list[str]) -> Merged:
        folder, path = cell.folder, cell.folder.path
        if not self.args.resume:
            if folder.has_results():
                raise UsageError(f"{folder.results_path} exists: pass --resume to continue that run, or another --out")
            path.mkdir(parents=True, exist_ok=True)
            for part in folder.part_files():
                part.unlink()
            folder.results_path.write_text("")
            return Merged()
        summary_path = path / "summary.json"
        if summary_path.exists():
            try:
                before = json.loads(summary_path.read_text(encoding="utf-8"))["options"]
                defaults = EvalSettings().as_dict()
                changed = [f"{k} {before.get(k, defaults.get(k))!r} -> {cell.options[k]!r}"
                           for k in result_options() if before.get(k, defaults.get(k)) != cell.options[k]]
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                raise UsageError(f"{summary_path} is unreadable ({exc}): cannot check the run's options") from exc
            if changed:
                raise UsageError(f"{path} holds a run with other options ({'; '.join(changed)}); use a new --out")
        merged = folder.consolidate(order, remove_parts=True)
        if merged.dropped:
            self.say(f"dropped {merged.dropped} unreadable line(s) of {path} (cut short by a kill); "
                     "those expressions are evaluated again")
        if merged.scored_twice:
            self.say(f"{path}: {len(merged.scored_twice)} expression(s) had two different results, the last kept: "
                     f"{', '.join(merged.scored_twice[:5])}")
        return merged

    def summary(self, ci: int, results: dict[str, dict], evaluated: int, scored_twice: int = 0) -> dict:
        """``run``: ranks; expressions logged by this invocation; kept from before; scored twice (must be 0)."""
        self.timing["wall_s"] = round(time.perf_counter() - self.started, 3)
        before = self.prior[ci].records
        reused = sum(1 for e in self.expressions if e.key in before and "error" not in before[e.key])
        run = {"ranks": self.dist.world_size, "evaluated": evaluated, "reused": reused, "scored_twice": scored_twice}
        summary = summarize(self.expressions, results, self.cells[ci].options, dict(self.timing), run)
        if self.load_report is not None:
            summary["load"] = self.load_report
        return summary

    # -- every rank: its share; rank 0 then merges ----------------------------------------------
    def work(self, plan: dict, markers: Markers) -> int:
        dist, args = self.dist, self.args
        items = plan["work"][dist.rank]
        many = dist.world_size > 1

        def load(settings: EvalSettings) -> VideoSegmenter:
            try:
                segmenter = load_segmenter(args.model, self.device, args.dtype, args.original_sam2,
                                           revision=args.revision, lm_devices=args.lm_devices,
                                           **settings.load_kwargs())
            except (SegmenterUnavailable, Sa2VAError, ValueError, OSError) as exc:
                at = f" (revision {args.revision})" if args.revision else ""
                raise LoadFailed(f"cannot load {args.model}{at}: {exc}") from exc
            if settings.mode is not None and not hasattr(segmenter, "modes"):
                raise LoadFailed(f"--mode is for SaSaSa2VA checkpoints; {args.model} is a Sa2VA / Sa2VA-i one")
            report = getattr(getattr(segmenter, "engine", None), "load_report", None)
            if self.load_report is None and isinstance(report, dict):
                self.load_report = dict(report)
            return segmenter

        worker = Worker(rank=dist.rank, world_size=dist.world_size, cells=self.cells, expressions=self.expressions,
                        load=load, save_masks=args.save_masks, examples=args.report_examples,
                        status=lambda **info: markers.write_status(dist.rank, **info), show_bar=many,
                        extra=q_frame_option(args.q_frame_file, args.q_frames))
        if not dist.is_main:
            failure = worker.run(items)
            return self.finish_rank(markers, failure, len(items))
        total = len(self.cells) * len(self.expressions)
        done_before = total - sum(len(w) for w in plan["work"])
        monitor = Monitor(self.cells, dist.world_size, markers, self.prior, total, done_before,
                          on_change=self.live_summary, show_bar=True, desc="all ranks" if many else args.dataset)
        self.monitor = monitor
        previous = _on_sigterm(_raise_terminated)
        failure, problems, interrupted = None, [], 0
        try:
            failure = worker.run(items, on_record=monitor.poll)
            self.finish_rank(markers, failure, len(items))
            if many:  # even after its own failure: what the others finish is kept
                _, problems = monitor.wait(range(1, dist.world_size), args.stall_timeout)
        except (KeyboardInterrupt, Terminated) as exc:
            interrupted = 143 if isinstance(exc, Terminated) else 130
            self.say("interrupted: merging what is done; continue with --resume")
            # torchrun stops every rank when one fails: say which one and why, if it could tell
            problems = [failure_text(m) for r in range(1, dist.world_size)
                        if (m := markers.done(r)) is not None and not m.get("ok")]
        finally:
            _on_sigterm(previous)
            monitor.close()
        clean = not interrupted and not problems and failure is None
        self.timing["load_s"] = round(worker.load_s, 3)  # rank 0's
        summaries = self.finalize(clean)
        for problem in problems:
            self.say(problem)
        if problems or failure is not None:
            self.say("the run is incomplete: run the same command with --resume to finish it")
        if interrupted:
            return interrupted
        if failure is not None:
            return failure.code
        if problems:
            return 1
        return 1 if any(s["errors"] or not s["complete"] for s in summaries) else 0

    def finish_rank(self, markers: Markers, failure, count: int) -> int:
        """The rank's completion marker (and its message when it failed); its exit status."""
        if failure is None:
            markers.write_done(self.dist.rank, ok=True, evaluated=count)
            return 0
        markers.write_done(self.dist.rank, ok=False, key=failure.key, text=failure.text, error=failure.error)
        text = failure_text({"rank": self.dist.rank, "key": failure.key, "text": failure.text, "error": failure.error})
        self.say(text if self.dist.world_size > 1 else text.removeprefix("rank 0 "))
        return failure.code

    def live_summary(self, ci: int, view: dict[str, dict]) -> None:
        summary = self.summary(ci, view, evaluated=self.monitor.evaluated[ci])
        write_summary(self.cells[ci].folder.path, summary)
        if len(self.cells) == 1:
            self.monitor.set_score(summary.get("J&F"))

    def finalize(self, clean: bool) -> list[dict]:
        """Merge every setting's parts into results.jsonl; summaries, reports, the grid's table."""
        order = [e.key for e in self.expressions]
        summaries, reports = [], []
        for ci, cell in enumerate(self.cells):
            merged = cell.folder.consolidate(order, remove_parts=clean)
            if merged.dropped:
                self.say(f"dropped {merged.dropped} unreadable line(s) of {cell.folder.path}")
            if merged.scored_twice:
                self.say(f"{cell.folder.path}: expressions scored twice with different results: "
                         f"{', '.join(merged.scored_twice[:5])}")
            summary = self.summary(ci, merged.records, evaluated=self.monitor.evaluated[ci],
                                   scored_twice=len(merged.scored_twice))
            write_summary(cell.folder.path, summary)
            summaries.append(summary)
            reports.append(self.report(cell, summary, merged))
            print(headline(summary) + f" -> {cell.folder.path / 'summary.md'}")
        if self.axes:
            self.write_grid(summaries, reports)
        return summaries

    def report(self, cell: Cell, summary: dict, merged: Merged) -> Path | None:
        if self.args.no_report:
            return None
        from sa2va_i_ros.offline.evaluation.report import ReportUnavailable, write_run_report

        records = [merged.records[e.key] for e in self.expressions if e.key in merged.records]
        overlays = cell.folder.path / "overlays"
        best, worst = pick_extremes(records, overlays, self.args.report_examples)
        try:
            return write_run_report(cell.folder.path, summary, records, best, worst, overlays)
        except ReportUnavailable as exc:
            self.say(str(exc))
            return None

    def write_grid(self, summaries: list[dict], reports: list[Path | None]) -> None:
        settings = [c.settings for c in self.cells]
        rows = ablation.rows(settings, summaries, self.axes)
        dataset = f"{self.args.dataset} {self.split}".strip()
        header, body = ablation.table(rows, self.axes, dataset)
        fixed = {k: settings[0].shown(k) for k in knobs() if k not in self.axes}
        title = f"Ablation: {self.args.model} on {dataset}"
        text = ablation.markdown(header, body, fixed, title)
        write_atomic(self.out / "ablation.md", text)
        write_atomic(self.out / "ablation.json", json.dumps(
            {"dataset": self.args.dataset, "split": self.split, "model": self.args.model, "axes": self.axes,
             "fixed": fixed, "rows": rows, "folders": [str(c.folder.path) for c in self.cells]}, indent=2) + "\n")
        print(text)
        if not self.args.no_report:
            from sa2va_i_ros.offline.evaluation.report import ReportUnavailable, write_grid_report

            try:
                write_grid_report(self.out, header, body, rows, reports, title)
            except ReportUnavailable as exc:
                self.say(str(exc))


def _raise_terminated(signum, frame):
    raise Terminated()


def _on_sigterm(handler):
    """Install a SIGTERM handler (main thread only; elsewhere nothing changes); returns the previous one."""
    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:
        return handler


if __name__ == "__main__":
    raise SystemExit(main())
