"""``winclip predict`` as one call, :func:`inspect_images` (what the command and notebook 07 run): collect and check the
inputs, score them, write the tables, one overlay PNG per image, the score histogram and the page.

Output folder::

    scores.csv  errors.csv  maps.npz  run.json       (winclip_lib.inspection.outputs)
    overlays/<name>.png                              one per scored image (winclip_lib.inspection.figures)
    score_histogram.png
    report.html                                      the page (winclip_lib.inspection.page)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from winclip_lib.experiments.config import RunConfig
from winclip_lib.experiments.stages import StageTimes, format_stages
from winclip_lib.inspection.figures import plot_score_histogram, write_overlays
from winclip_lib.inspection.inputs import collect_inputs
from winclip_lib.inspection.outputs import DEFAULT_OUT, prepare_out_dir, write_outputs
from winclip_lib.inspection.page import write_inspection_page
from winclip_lib.inspection.scoring import PredictionRun, predict_images
from winclip_lib.inspection.threshold import choose_threshold
from winclip_lib.report.figures.style import save_figure

__all__ = ["Inspection", "inspect_images"]

@dataclass
class Inspection:
    """What :func:`inspect_images` did: the run, the output folder, the files written (``overlays``: by image
    name), the page."""

    run: PredictionRun
    out_dir: Path
    files: dict[str, Path]
    overlays: dict[str, Path] = field(default_factory=dict)

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
            output folder holding other files — all before anything is scored.
    """
    say = log or (lambda _msg: None)
    cfg.check_runnable()
    choose_threshold(threshold)
    out = Path(out_dir).expanduser()
    times = StageTimes()
    with times.stage("decode"):  # every input is read once to check it (in parallel)
        inputs = collect_inputs(images, normal, out_dir=out, progress=progress)
    out = prepare_out_dir(out)
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
    files = write_outputs(run, out)
    overlays = write_overlays(run, out, progress) if run.images else {}
    histogram = None
    if run.images:
        fig = plot_score_histogram(run)
        histogram = save_figure(fig, out / "score_histogram.png", dpi=100)
        plt.close(fig)
        files["histogram"] = histogram
    files["page"] = write_inspection_page(run, out, overlays, histogram, embed)
    for s in run.skipped:
        say(f"skipped ({s.role}): {s.reason}")
    if run.images:
        top = run.table().head(3)
        say("highest scores: " + ", ".join(f"{Path(p).name} {v:.3f}" for p, v in zip(top["path"], top["score"],
                                                                                    strict=True)))
    say(f"wrote {files['page']} (and scores.csv, errors.csv, maps.npz, run.json, overlays/ in {out})")
    if run.label:
        say(run.label)
    return Inspection(run, out, files, overlays)
