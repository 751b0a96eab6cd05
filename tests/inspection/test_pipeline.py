"""``winclip predict`` end to end on a plain folder of photos: every readable image scored, the rest listed with
reasons; a given threshold decides, zero-shot without one says why; stopped at any moment, the folder never looks
complete and the same call completes it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.inspection.conftest import LABEL
from winclip_lib.core.backbone import TINY_MODEL
from winclip_lib.experiments.config import RunConfig
from winclip_lib.inspection.inputs import MIN_IMAGE_SIDE
from winclip_lib.inspection.pipeline import inspect_images


def test_every_readable_image_is_scored_and_the_rest_listed_with_reasons(photos, few_shot):
    assert few_shot["status"] == (3, 3)
    scores = few_shot["scores"]
    assert {Path(p) for p in scores["path"]} == set(photos["readable"])
    assert list(scores["rank"]) == [1, 2, 3, 4] and scores["score"].is_monotonic_decreasing
    assert (scores["banner"] == LABEL).all()
    for row in scores.itertuples():
        assert (row.height, row.width) == photos["readable"][Path(row.path)]
    errors = pd.read_csv(few_shot["out"] / "errors.csv").set_index("path")
    data = photos["data"]
    assert set(errors.index) == {str(data / "corrupt.png"), str(data / "notes.txt"), str(data / "thumb.png")}
    assert errors.loc[str(data / "corrupt.png"), "problem"] == "unreadable"
    assert "truncated" in errors.loc[str(data / "corrupt.png"), "reason"]
    assert errors.loc[str(data / "notes.txt"), "problem"] == "not an image"
    assert ".txt" in errors.loc[str(data / "notes.txt"), "reason"]
    thumb = errors.loc[str(data / "thumb.png")]
    assert thumb["problem"] == "too small" and "12 x 8 px" in thumb["reason"]
    assert f"{MIN_IMAGE_SIDE} x {MIN_IMAGE_SIDE} px" in thumb["reason"]
    assert all(str(data) in r for r in errors["reason"])  # every reason names its file
    info = few_shot["first"]
    assert info["k"] == 3 and info["mode"] == "WinCLIP+ (few-shot, k = 3)" and info["n_skipped"] == 3
    assert sorted(info["references"]) == [str(p) for p in photos["ref_files"]]
    assert info["label"] == LABEL and info["settings"]["precision"] == "fp32"
    # the outputs' time is recorded beside the scoring's; both are parts of the call, timed in it
    assert 0 < info["output_seconds"] and 0 < info["stages"]["total_seconds"]


def test_a_given_threshold_decides_and_zero_shot_without_one_says_why(photos, tiny, tmp_path):
    cfg = RunConfig.from_settings(model_name=TINY_MODEL, pretrained="none", precision="fp32", device="cpu",
                                  cache_dir=str(tmp_path / "cache"))
    files = [str(p) for p in photos["readable"]]
    undecided = inspect_images(cfg, "metal disc", files, out_dir=tmp_path / "a", backbone=tiny, progress=False,
                               log=None)
    assert undecided.exit_status == 0 and set(undecided.run.table()["decision"]) == {"n/a"}
    assert "no decision: no normal reference and no --threshold" in undecided.page.read_text()
    recorded = json.loads((tmp_path / "a" / "run.json").read_text())["output_seconds"]
    assert 0 < round(undecided.output_seconds, 3) == recorded
    t = float(np.median(undecided.run.score))
    decided = inspect_images(cfg, "metal disc", files, out_dir=tmp_path / "b", threshold=t, backbone=tiny,
                             progress=False, log=None, embed=False)
    table = pd.read_csv(tmp_path / "b" / "scores.csv")
    assert list(table["decision"]) == ["anomalous" if s > t else "normal" for s in table["score"]]
    assert (table["decision"] == "anomalous").sum() == 2
    page = decided.page.read_text()  # linked, not embedded: every link is a file next to the page
    links = re.findall(r'<img src="([^"]+)"', page)
    assert len(links) == 5 and all((tmp_path / "b" / link).is_file() for link in links)


#: Where a ``predict`` run can be stopped, in the order it gets there: scoring, the tables, the overlays, the
#: histogram, the page, the final run.json.
MOMENTS = ("predict_images", "write_outputs", "write_overlays", "save_figure", "write_inspection_page", "run_info")


def test_predict_interrupted_at_any_moment_never_looks_complete_and_the_same_call_completes_it(photos, tiny, tmp_path,
                                                                                               monkeypatch):
    from winclip_lib.inspection import pipeline

    cfg = RunConfig.from_settings(model_name=TINY_MODEL, pretrained="none", precision="fp32", device="cpu",
                                  cache_dir=str(tmp_path / "cache"))
    files = [str(p) for p in photos["readable"]]
    call = dict(cfg=cfg, class_name="metal disc", images=files, normal=str(photos["refs"]), backbone=tiny,
                progress=False, log=None)
    inspect_images(**call, out_dir=tmp_path / "reference")
    reference = pd.read_csv(tmp_path / "reference" / "scores.csv")
    out = tmp_path / "out"
    for moment in MOMENTS:
        def stop(*args, **kwargs):
            raise KeyboardInterrupt

        with monkeypatch.context() as m:
            m.setattr(pipeline, moment, stop)
            with pytest.raises(KeyboardInterrupt):
                inspect_images(**call, out_dir=out)
        info = json.loads((out / "run.json").read_text())
        assert info["status"] == "interrupted" and info["kind"] == "winclip-predict", moment
        if moment in MOMENTS[:2]:  # nothing of the earlier, complete output is left to be taken for this run's
            assert sorted(p.name for p in out.iterdir()) == ["run.json"], moment
        done = inspect_images(**call, out_dir=out)
        assert json.loads((out / "run.json").read_text())["status"] == "complete"
        assert done.run.encode_counts["encoded"] == 0, moment  # everything came from the feature cache
        pd.testing.assert_frame_equal(pd.read_csv(out / "scores.csv"), reference)
        assert (out / "report.html").is_file() and len(list((out / "overlays").iterdir())) == len(files)
    # killed (no chance to record anything): run.json still says running, and the same call completes it
    (out / "report.html").unlink()
    begun = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({key: begun[key] for key in ("kind", "format", "identity")}
                                             | {"status": "running"}))
    said = []
    inspect_images(**{**call, "log": said.append}, out_dir=out)
    assert any(s.startswith(f"completing the earlier output in {out}") for s in said)
    assert json.loads((out / "run.json").read_text())["status"] == "complete" and (out / "report.html").is_file()
