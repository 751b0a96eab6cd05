"""``winclip predict`` as one call, :func:`inspect_images` (what the command and notebook 07 run): collect and check the
inputs, score them, write the tables, one overlay PNG per image, the score histogram and the page.

Output folder::

    scores.csv  errors.csv  maps.npz  run.json       (winclip_lib.inspection.outputs)
    overlays/<name>.png                              one per scored image (winclip_lib.inspection.figures)
    score_histogram.png
    report.html                                      the page (winclip_lib.inspection.page)

Before any work the output folder (new, empty, or an earlier output of ``winclip predict``) and the feature cache are
checked. ``run.json`` is written first (``running``) and last (``complete``; ``interrupted`` after Ctrl-C, ``failed:
<reason>`` after an error): an interrupted run is completed by the same command, the images it encoded read from the
feature cache (:mod:`winclip_lib.inspection.outputs`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from winclip_lib.experiments.config import RunConfig
from winclip_lib.experiments.files import check_output_dirs, describe_error, writing
from winclip_lib.experiments.stages import StageTimes, format_stages
from winclip_lib.inspection.figures import plot_score_histogram, write_overlays
from winclip_lib.inspection.inputs import Inputs, collect_inputs
from winclip_lib.inspection.outputs import (
    DEFAULT_OUT,
    OUTPUT_KIND,
    check_out_dir,
    prediction_identity,
    run_info,
    start_outputs,
    write_outputs,
    write_run_json,
)
from winclip_lib.inspection.page import write_inspection_page
from winclip_lib.inspection.scoring import PredictionRun, predict_images
from winclip_lib.inspection.threshold import choose_threshold
from winclip_lib.report.figures.style import save_figure

__all__ = ["Inspection", "inspect_images"]

@dataclass
class Inspection:
    """What :func:`inspect_images` did: the run, the output folder, the files written (``overlays``: by image
    name), the page, and the seconds writing the outputs took (after the scoring: the tables, the overlays, the
    page)."""

    run: PredictionRun
    out_dir: Path
    files: dict[str, Path]
    overlays: dict[str, Path] = field(default_factory=dict)
    output_seconds: float = 0.0

    @property
    def page(self) -> Path:
        return self.files["page"]

    @property
    def exit_status(self) -> int:
        return self.run.exit_status


def inspect_images(cfg: RunConfig, class_name: str, images: Sequence[str | Path] | str | Path,
                   normal: Sequence[str | Path] | str | Path | None = (), out_dir: str | Path = DEFAULT_OUT,
                   threshold: float | None = None, *, embed: bool | None = None, progress: bool | None = None,
                   log: Callable[[str], Any] | None = print, backbone: Any = None) -> Inspection:
    """Score your images and write everything (``winclip predict``; notebook 07): see the module docstring.

    Args:
        cfg: the settings (a :class:`RunConfig`: model, weights, precision, device, cache, method settings).
        class_name: the object's name in words ("metal nut").
        images, normal: files, folders or glob patterns (:func:`~winclip_lib.inspection.inputs.collect_inputs`).
        out_dir: the output folder (new, empty, or an earlier output, whose files are replaced).
        threshold: the decision threshold; None: the references' leave-one-out rule (k >= 2), else no decision.
        embed: overlays in the page as base64 (None: when small enough). progress: progress bars. log: where the
            messages go (None: silent). backbone: an already loaded backbone matching ``cfg``.

    Raises:
        NoInputError: nothing matched IMAGES (or --normal). ValueError / FileExistsError: bad settings or an
            output folder holding other files — all before anything is scored. WriteError: an output folder or
            cache that cannot be written (before anything is scored), or a write that failed later (``run.json``
            then says ``failed: <reason>``).
    """
    say = log or (lambda _msg: None)
    cfg.check_runnable()
    choose_threshold(threshold)
    out = Path(out_dir).expanduser()
    identity = prediction_identity(cfg, class_name, images, normal, threshold)
    earlier = check_out_dir(out)
    check_output_dirs({"--cache-dir": cfg.cache_dir})
    times = StageTimes()
    with times.stage("decode"):  # every input is read once to check it (in parallel)
        inputs = collect_inputs(images, normal, out_dir=out, progress=progress)
    if earlier is not None:
        same = earlier.get("identity") == identity
        what = "the same images and settings" if same else "other images or settings"
        doing = "completing" if same and earlier.get("status") != "complete" else "replacing"
        say(f"{doing} the earlier output in {out} ({what}; its status: {earlier.get('status', 'unknown')})")
    start_outputs(out, identity)
    try:
        result = _score_and_write(cfg, class_name, inputs, normal, out, threshold, embed, progress, say, backbone,
                                  times)
        write_run_json(out, {**run_info(result.run, identity), "output_seconds": round(result.output_seconds, 3)})
    except BaseException as exc:
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"failed: {describe_error(exc)}"
        with contextlib.suppress(OSError):  # a full disk may refuse run.json too: the error raised says why
            write_run_json(out, {"kind": OUTPUT_KIND, "format": 1, "status": status, "identity": identity})
        raise
    say(f"wrote {result.page} (and scores.csv, errors.csv, maps.npz, run.json, overlays/ in {out}) in "
        f"{result.output_seconds:.1f} s")
    if result.run.label:
        say(result.run.label)
    return result


def _score_and_write(cfg: RunConfig, class_name: str, inputs: Inputs, normal: Any, out: Path,
                     threshold: float | None, embed: bool | None, progress: bool | None, say: Callable[[str], Any],
                     backbone: Any, times: StageTimes) -> Inspection:
    """Score the checked inputs and write every file but the final ``run.json``."""
    n_normal = len(inputs.normal)
    say(f"inputs: {len(inputs.images)} image(s) to score, {n_normal} normal reference(s), {len(inputs.skipped)} "
        "file(s) skipped")
    if normal and not n_normal and inputs.images:
        say("no normal reference could be read: scoring zero-shot")
    run = predict_images(cfg, class_name, inputs, threshold, backbone=backbone, progress=progress, times=times)
    if run.images:
        say(f"mode: {run.mode}" + (f": all {run.k} usable normal references" if run.k else ""))
        say(f"backbone: {run.backbone}")
        counts = run.encode_counts
        say(f"images encoded: {counts['encoded']}, read from the feature cache: {counts['hits']}")
        say(f"scored {len(run.images)} image(s) in {run.seconds:.1f} s ({run.seconds / len(run.images):.3f} s per "
            "image)")
        say(format_stages(run.stages))
    say(f"threshold: {run.threshold.explanation}")
    started = time.perf_counter()
    files = write_outputs(run, out)
    overlays = write_overlays(run, out, progress) if run.images else {}
    if run.images:
        fig = plot_score_histogram(run)
        with writing(out / "score_histogram.png"):
            files["histogram"] = save_figure(fig, out / "score_histogram.png", dpi=100)
        plt.close(fig)
    files["page"] = write_inspection_page(run, out, overlays, files.get("histogram"), embed)
    output_seconds = time.perf_counter() - started
    for s in run.skipped:
        say(f"skipped ({s.role}): {s.reason}")
    if run.images:
        top = run.table().head(3)
        say("highest scores: " + ", ".join(f"{Path(p).name} {v:.3f}" for p, v in zip(top["path"], top["score"],
                                                                                    strict=True)))
    return Inspection(run, out, files, overlays, output_seconds)
