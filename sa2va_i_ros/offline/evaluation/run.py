"""One ``sa2va-i-eval`` process's part of a run (a rank under torchrun, or the whole run alone).

Every rank reads the dataset and checks with the others that they read the same
expressions; rank 0 plans (``plan``) and broadcasts who does what; every rank
confirms it sees the shared output folder, then evaluates its share
(``worker``). Rank 0 meanwhile watches the others' files (``monitor``), keeps
the summaries up to date and at the end merges and reports (``finish``), also
after an interrupt or a failure, so that --resume continues from there.
Exit status: 0 all done; 1 errors, an incomplete run or a crash mid-run; 2 a
run that cannot start or go on (data, folder, launcher, model); 130/143
interrupted.
"""

from __future__ import annotations

import argparse
import hashlib
import signal
import sys
import time
from pathlib import Path

from sa2va_i_ros.errors import Sa2VAError
from sa2va_i_ros.offline.evaluation.datasets import DatasetError, Expression, load_dataset
from sa2va_i_ros.offline.evaluation.distributed import Dist, DistError, Markers
from sa2va_i_ros.offline.evaluation.finish import merge_folder, write_grid, write_report
from sa2va_i_ros.offline.evaluation.loading import SegmenterUnavailable, load_segmenter, q_frame_option
from sa2va_i_ros.offline.evaluation.monitor import Monitor, failure_text
from sa2va_i_ros.offline.evaluation.plan import UsageError, assign, check_folder, left, open_parts
from sa2va_i_ros.offline.evaluation.settings import EvalSettings
from sa2va_i_ros.offline.evaluation.store import Merged
from sa2va_i_ros.offline.evaluation.summary import headline, summarize, write_summary
from sa2va_i_ros.offline.evaluation.worker import Cell, LoadFailed, VideoSegmenter, Worker


class Terminated(BaseException):
    """SIGTERM (torchrun stopping the ranks): rank 0 still merges what is done."""


class Evaluation:
    """``args``: the parsed ``sa2va-i-eval`` options; ``load_segmenter``: how a model is loaded (the command
    passes its own, so that tests can swap in doubles)."""

    def __init__(self, args: argparse.Namespace, split: str, cells: list[Cell], axes: list[str], dist: Dist,
                 started: float, load_segmenter=load_segmenter):
        self.args, self.split, self.cells, self.axes, self.dist = args, split, cells, axes, dist
        self.started, self.out = started, Path(args.out)
        self.load_segmenter = load_segmenter
        self.expressions: list[Expression] = []
        self.device = dist.device_for(args.device)
        self.timing = {"load_s": 0.0}
        self.load_report: dict | None = None  # the loader's report of rank 0's first model (placement, dtypes)
        self.prior: list[Merged] = []  # rank 0: what each setting's folder held before this run
        self.monitor: Monitor | None = None  # rank 0, while it works

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
                merged = check_folder(cell, order, self.args.resume, self.say)
                self.prior.append(merged)
                items += left(merged, ci, self.expressions)
                write_summary(cell.folder.path, self.summary(ci, merged.records, evaluated=0))
            work = assign(self.cells, self.expressions, items, self.dist.world_size)
            run_id = open_parts(self.out / "parts", self.dist.world_size, len(items))
            return {"run_id": run_id, "work": work}
        except (UsageError, OSError) as exc:
            return {"error": str(exc)}

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
    def load(self, settings: EvalSettings) -> VideoSegmenter:
        """The model for one load-stage setting (the worker calls it once per distinct one)."""
        args = self.args
        try:
            segmenter = self.load_segmenter(args.model, self.device, args.dtype, args.original_sam2,
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

    def work(self, plan: dict, markers: Markers) -> int:
        dist, args = self.dist, self.args
        items = plan["work"][dist.rank]
        many = dist.world_size > 1
        worker = Worker(rank=dist.rank, world_size=dist.world_size, cells=self.cells, expressions=self.expressions,
                        load=self.load, save_masks=args.save_masks, examples=args.report_examples,
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
        args, order = self.args, [e.key for e in self.expressions]
        summaries, reports = [], []
        for ci, cell in enumerate(self.cells):
            merged = merge_folder(cell, order, clean, self.say)
            summary = self.summary(ci, merged.records, evaluated=self.monitor.evaluated[ci],
                                   scored_twice=len(merged.scored_twice))
            write_summary(cell.folder.path, summary)
            summaries.append(summary)
            reports.append(None if args.no_report else
                           write_report(cell, summary, merged, self.expressions, args.report_examples, self.say))
            print(headline(summary) + f" -> {cell.folder.path / 'summary.md'}")
        if self.axes:
            write_grid(self.out, self.cells, self.axes, summaries, reports, dataset=args.dataset, split=self.split,
                       model=args.model, report=not args.no_report, say=self.say)
        return summaries


def _raise_terminated(signum, frame):
    raise Terminated()


def _on_sigterm(handler):
    """Install a SIGTERM handler (main thread only; elsewhere nothing changes); returns the previous one."""
    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:
        return handler
