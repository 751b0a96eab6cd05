"""The experiment grid: encode once / score many, cache reuse and invalidation, resume, tables, never overwriting
another run."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from tests.conftest import SYNTHETIC_SET
from winclip_lib import WinCLIP
from winclip_lib.core.backbone import TINY_MODEL, load_backbone
from winclip_lib.core.prompts import TextEmbeddingCache
from winclip_lib.datasets.catalog import DatasetError, class_name
from winclip_lib.datasets.references import sample_references
from winclip_lib.datasets.scan import load_split
from winclip_lib.datasets.synthetic import make_synthetic
from winclip_lib.evaluation.metrics import IMAGE_METRIC_NAMES, METRIC_NAMES
from winclip_lib.experiments.config import RunConfig
from winclip_lib.experiments.grid import run_grid, run_identity, run_or_load
from winclip_lib.experiments.rescore import predict_samples
from winclip_lib.experiments.results import BANNER_COLUMN, TABLES, load_results
from winclip_lib.experiments.summary import METRICS_COLUMNS, SCORES_COLUMNS, SUMMARY_COLUMNS
from winclip_lib.experiments.units import settings

CATEGORIES = SYNTHETIC_SET["categories"]
SHOTS, SEEDS = (0, 1, 2), (0, 1)


def _cfg(root: Path, tmp: Path, out: str = "out", **kw) -> RunConfig:
    base = dict(datasets={"synthetic": str(root)}, shots=SHOTS, seeds=SEEDS, model_name=TINY_MODEL,
                pretrained=None, precision="fp32", device="cpu", cache_dir=str(tmp / "cache"), out_dir=str(tmp / out),
                batch_size=4)
    return RunConfig(**{**base, **kw})


def _distinct_images(root: Path, categories=CATEGORIES, shots=SHOTS, seeds=SEEDS) -> int:
    """Test images plus the union of reference draws, counted independently of the runner."""
    n = 0
    for c in categories:
        refs = {s.image_path for k, seed in settings(shots, seeds) if k for s in
                sample_references("mvtec", root, c, k, seed)}
        n += len(load_split("mvtec", root, c, "test")) + len(refs)
    return n


def _tables(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in TABLES}


@pytest.fixture(scope="module")
def full_run(synth, tiny, tmp_path_factory):
    """One uninterrupted run of the small grid: (its RunResult, its tmp folder)."""
    tmp = tmp_path_factory.mktemp("full")
    return run_grid(_cfg(synth, tmp), progress=False, backbone=tiny), tmp


def test_settings_scored_in_groups_of_any_size_give_the_same_results(synth, tiny, full_run, tmp_path, monkeypatch):
    """The settings of a unit are scored together as far as their maps fit in MAP_GROUP_BYTES: one at a time (a
    budget of one byte) and two at a time give the very CSVs of the default run."""
    from winclip_lib.experiments import unit_eval

    result, full_tmp = full_run
    shutil.copytree(full_tmp / "cache", tmp_path / "cache")
    n_test = int(result.scores.groupby(["category", "k", "seed"]).size().max())
    for budget, name in ((1, "one"), (2 * 4 * n_test * 240 * 240, "two")):
        monkeypatch.setattr(unit_eval, "MAP_GROUP_BYTES", budget)
        again = run_grid(_cfg(synth, tmp_path, out=name), progress=False, backbone=tiny)
        pd.testing.assert_frame_equal(again.metrics, result.metrics, check_exact=True)
        pd.testing.assert_frame_equal(again.scores, result.scores, check_exact=True)


def test_full_grid_encodes_each_distinct_image_exactly_once(synth, full_run):
    result, tmp = full_run
    counts = result.info["encode_counts"]
    expected = _distinct_images(synth)
    naive = sum(len(load_split("mvtec", synth, c, "test")) * len(settings(SHOTS, SEEDS)) for c in CATEGORIES)
    naive += len(CATEGORIES) * sum(k for k, _ in settings(SHOTS, SEEDS))
    assert expected < naive  # re-running the ViT for every setting would encode 62 images, the cache 10 + refs
    assert counts["encoded"] == counts["distinct_encoded"] == counts["distinct_images"] == expected
    assert counts["max_encodes_per_image"] == 1 and counts["hits"] == 0
    assert counts["text_encodes"] == len(CATEGORIES)  # one per class, in this call's own text cache

    m = result.metrics
    assert list(m.columns) == METRICS_COLUMNS
    on_disk = pd.read_csv(tmp / "out" / "metrics.csv")  # a demo run's tables say so on every row
    assert list(on_disk.columns) == [BANNER_COLUMN, *METRICS_COLUMNS] and set(on_disk[BANNER_COLUMN]) == {
        "DEMO — random weights, synthetic data: not a reproduction"}
    n_settings = len(settings(SHOTS, SEEDS))
    assert len(m) == len(CATEGORIES) * n_settings * len(METRIC_NAMES)
    assert set(m["metric"]) == set(METRIC_NAMES) and m["value"].between(0, 1).all()
    assert (m.loc[m["k"] == 0, "seed"] == 0).all()
    assert list(result.scores.columns) == SCORES_COLUMNS
    assert len(result.scores) == n_settings * 10 and result.scores["image"].str.match(r"(disc|tiles)/test/").all()
    assert list(result.summary.columns) == SUMMARY_COLUMNS
    assert result.complete and result.is_random and "DEMO" in result.label and "random weights" in result.label
    info = json.loads((tmp / "out" / "run.json").read_text())
    assert info["is_random"] and info["weights_id"] == "random:0" and info["versions"]["torch"] == torch.__version__
    assert RunConfig.from_dict(info["config"]) == _cfg(synth, tmp)


def test_second_run_encodes_nothing_and_writes_identical_tables(synth, tiny, full_run):
    first, tmp = full_run
    # same cache, new output folder: every image from the cache
    again = run_grid(_cfg(synth, tmp, out="out2"), progress=False, backbone=tiny)
    assert again.info["encode_counts"]["encoded"] == 0
    assert again.info["encode_counts"]["hits"] == _distinct_images(synth)
    assert _tables(tmp / "out2") == _tables(tmp / "out")
    # same output folder: finished units are reused without touching the cache
    rerun = run_grid(_cfg(synth, tmp), progress=False, backbone=tiny)
    assert {u["status"] for u in rerun.info["units"]} == {"reused"}
    assert rerun.info["encode_counts"]["encoded"] == 0
    assert _tables(tmp / "out") == _tables(tmp / "out2")
    loaded = load_results(tmp / "out")
    pd.testing.assert_frame_equal(loaded.metrics, first.metrics)
    pd.testing.assert_frame_equal(loaded.scores, first.scores)
    pd.testing.assert_frame_equal(loaded.summary, first.summary)


def test_feature_changing_settings_reencode_and_never_reuse_parts(synth, tiny, full_run, tmp_path):
    _, full_tmp = full_run
    shutil.copytree(full_tmp / "cache", tmp_path / "cache")
    n = _distinct_images(synth)
    bf16 = load_backbone(TINY_MODEL, None, precision="bf16", device="cpu")
    for kw, backbone in (({"precision": "bf16"}, bf16), ({"resize_mode": "crop"}, tiny)):
        r = run_grid(_cfg(synth, tmp_path, out=f"out-{next(iter(kw))}", **kw), progress=False, backbone=backbone)
        assert r.info["encode_counts"]["encoded"] == n, kw
        assert {u["status"] for u in r.info["units"]} == {"computed"}
    # another patch-token variant: the cached entries are extended (one more pass each), nothing recomputed twice
    r = run_grid(_cfg(synth, tmp_path, out="out-raw", patch_tokens="raw"), progress=False, backbone=tiny)
    assert r.info["encode_counts"]["extended"] == n and {u["status"] for u in r.info["units"]} == {"computed"}
    # a scoring-only change re-scores from the cache: no encoding, new parts, other numbers
    r = run_grid(_cfg(synth, tmp_path, out="out-t", temperature=0.5), progress=False, backbone=tiny)
    assert r.info["encode_counts"]["encoded"] == 0 and {u["status"] for u in r.info["units"]} == {"computed"}
    assert not np.allclose(r.scores["score"], full_run[0].scores["score"])
    # a rewritten image: its unit is redone and only that image is encoded
    data = shutil.copytree(synth, tmp_path / "syn")
    target = data / "tiles" / "test" / "good" / "000.png"
    Image.fromarray(255 - np.asarray(Image.open(target).convert("RGB"))).save(target)
    base = run_grid(_cfg(data, tmp_path, out="data"), progress=False, backbone=tiny)
    assert base.info["encode_counts"]["encoded"] == 1
    Image.fromarray(np.asarray(Image.open(target).convert("RGB")) // 2).save(target)
    r = run_grid(_cfg(data, tmp_path, out="data"), progress=False, backbone=tiny)
    status = {u["category"]: u["status"] for u in r.info["units"]}
    assert status == {"disc": "reused", "tiles": "computed"} and r.info["encode_counts"]["encoded"] == 1


def test_corrupt_cache_entry_is_recomputed_with_identical_results(synth, tiny, full_run, tmp_path):
    first, full_tmp = full_run
    shutil.copytree(full_tmp / "cache", tmp_path / "cache")
    entries = sorted((tmp_path / "cache").glob("*/*/*.feat"))
    assert len(entries) == _distinct_images(synth)
    entries[0].write_bytes(entries[0].read_bytes()[:1000])  # truncated
    r = run_grid(_cfg(synth, tmp_path), progress=False, backbone=tiny)
    c = r.info["encode_counts"]
    assert c["invalid"] == 1 and c["encoded"] == 1 and c["hits"] == len(entries) - 1
    # the entry is re-encoded alone instead of in a batch of 4: features agree to float rounding (~3e-7)
    np.testing.assert_allclose(r.scores["score"], first.scores["score"], atol=1e-6)
    np.testing.assert_allclose(r.metrics["value"], first.metrics["value"], atol=1e-5)


def test_resume_after_a_kill_redoes_only_unfinished_units(synth, tiny, full_run, tmp_path):
    first, full_tmp = full_run
    cfg = _cfg(synth, tmp_path)
    stopped = run_grid(cfg, progress=False, backbone=tiny, max_units=1)  # "killed" after the first unit
    assert not stopped.complete and [u["status"] for u in stopped.info["units"]] == ["computed", "pending"]
    assert not any((tmp_path / "out" / t).exists() for t in TABLES)
    assert json.loads((tmp_path / "out" / "run.json").read_text())["status"] == "incomplete"
    # the second unit dies midway: a part file without a marker is ignored and the unit redone
    key = stopped.info["units"][0]["key"]
    parts = tmp_path / "out" / "parts" / "synthetic"
    other = parts / "tiles"
    other.mkdir(parents=True)
    (other / "deadbeef.metrics.csv").write_text("dataset,category\nhalf")
    resumed = run_grid(cfg, progress=False, backbone=tiny)
    assert [u["status"] for u in resumed.info["units"]] == ["reused", "computed"]
    tiles_refs = _distinct_images(synth, categories=("tiles",))
    assert resumed.info["encode_counts"]["encoded"] == tiles_refs  # disc was not re-encoded
    assert _tables(tmp_path / "out") == _tables(full_tmp / "out")

    # a finished unit whose part file was damaged after its marker is redone, from the cache
    (parts / "disc" / f"{key}.scores.csv").write_text("truncated")
    again = run_grid(cfg, progress=False, backbone=tiny)
    assert [u["status"] for u in again.info["units"]] == ["computed", "reused"]
    assert again.info["encode_counts"]["encoded"] == 0
    assert _tables(tmp_path / "out") == _tables(full_tmp / "out")


def test_runner_numbers_equal_direct_predict(synth, tiny, full_run):
    result, tmp = full_run
    scores = result.scores
    test = load_split("mvtec", synth, "disc", "test")
    paths = [s.image_path for s in test]
    model = WinCLIP(tiny, class_name("disc"), batch_size=4)
    for k, seed in ((0, 0), (2, 1)):
        if k:
            model.fit([s.image_path for s in sample_references("mvtec", synth, "disc", k, seed)])
        else:
            model.reset()
        direct = model.predict(paths).score.numpy()
        ours = scores[(scores["category"] == "disc") & (scores["k"] == k) & (scores["seed"] == seed)]
        assert list(ours["image"]) == [p.relative_to(synth).as_posix() for p in paths]
        np.testing.assert_allclose(ours["score"].to_numpy(), direct, atol=1e-6)
        again = predict_samples(_cfg(synth, tmp), "synthetic", "disc", k, seed, test[:3], backbone=tiny)
        np.testing.assert_allclose(again.score.numpy(), direct[:3], atol=1e-6)
        assert again.map.shape == (3, 240, 240)


def test_eval_at_mask_resolution(synth, tiny, full_run, tmp_path):
    _, full_tmp = full_run
    shutil.copytree(full_tmp / "cache", tmp_path / "cache")
    r = run_grid(_cfg(synth, tmp_path, shots=(0,), eval_resolution="mask"), progress=False, backbone=tiny)
    assert r.info["encode_counts"]["encoded"] == 0
    m240 = full_run[0].metrics
    assert m240.loc[m240["k"] == 0].reset_index(drop=True)["metric"].equals(r.metrics["metric"])
    assert r.metrics["value"].between(0, 1).all()


def test_config_round_trip_and_validation(synth, tmp_path, tiny):
    cfg = _cfg(synth, tmp_path, categories={"synthetic": ["tiles"]}, template_set=["a photo of a {}."])
    assert RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="unknown RunConfig field"):
        RunConfig.from_dict({**cfg.to_dict(), "shot": [0]})
    with pytest.raises(DatasetError, match="only 4 normal training images"):
        run_grid(_cfg(synth, tmp_path, shots=(8,)), progress=False, backbone=tiny)
    with pytest.raises(ValueError, match="does not match the RunConfig"):
        run_grid(_cfg(synth, tmp_path, precision="bf16"), progress=False, backbone=tiny)


def test_interrupted_run_is_recorded_and_resumes(synth, tiny, full_run, tmp_path, monkeypatch):
    _, full_tmp = full_run
    import winclip_lib.experiments.grid as grid

    real = grid.score_unit
    calls = {"n": 0}

    def ctrl_c_in_the_second_unit(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(grid, "score_unit", ctrl_c_in_the_second_unit)
    cfg = _cfg(synth, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_grid(cfg, progress=False, backbone=tiny)
    info = json.loads((tmp_path / "out" / "run.json").read_text())
    assert info["status"] == "interrupted" and [u["status"] for u in info["units"]] == ["computed"]
    with pytest.raises(FileNotFoundError, match="says 'interrupted': rerun the same command to resume"):
        load_results(tmp_path / "out")
    monkeypatch.setattr(grid, "score_unit", real)
    resumed = run_grid(cfg, progress=False, backbone=tiny)
    assert [u["status"] for u in resumed.info["units"]] == ["reused", "computed"]
    assert _tables(tmp_path / "out") == _tables(full_tmp / "out")


def test_results_are_readable_by_colleagues(synth, tiny, full_run):
    """Files get the permissions of the user's umask (here 022: rw-r--r--), not the private mode of temp files."""
    _, tmp = full_run
    old = os.umask(0o022)
    try:
        run_grid(_cfg(synth, tmp, out="modes"), progress=False, backbone=tiny)
    finally:
        os.umask(old)
    for name in (*TABLES, "run.json"):
        assert ((tmp / "modes" / name).stat().st_mode & 0o777) == 0o644, name


def test_image_metrics_alone_without_masks(tiny, tmp_path):
    """A dataset whose anomalous images have no masks: --no-masks gives the image metrics, pixel metrics are NaN
    (not available), instead of failing."""
    data = make_synthetic(tmp_path / "syn", categories=("disc",), n_train=2, n_test_good=2, n_test_bad=3, size=48)
    shutil.rmtree(data / "disc" / "ground_truth")
    cfg = _cfg(data, tmp_path, shots=(0,))
    with pytest.raises(DatasetError, match="has no mask"):
        run_grid(cfg, progress=False, backbone=tiny)
    r = run_grid(cfg.replace(masks=False), progress=False, backbone=tiny)
    values = r.metrics.set_index("metric")["value"]
    assert values[list(IMAGE_METRIC_NAMES)].between(0, 1).all()
    assert values.drop(list(IMAGE_METRIC_NAMES)).isna().all()


def test_crop_geometry_is_carried_into_the_masks_on_non_square_images(tiny, tmp_path):
    """Non-square images in crop mode: the masks go through the same crop as the images (at 240) or the maps onto
    the covered region of each mask (at the mask's resolution) — so a perfect map gets a perfect pixel AUROC."""
    from winclip_lib.experiments.unit_eval import eval_masks
    from winclip_lib.experiments.units import plan_units

    data = make_synthetic(tmp_path / "syn", categories=("tiles",), n_train=2, n_test_good=1, n_test_bad=3, size=64)
    for path in (data / "tiles").rglob("*.png"):  # stretch every image and mask to 64 x 112
        img = Image.open(path)
        img.resize((112, 64), Image.Resampling.NEAREST).save(path)
    for mode in ("resize", "crop"):
        cfg = _cfg(data, tmp_path, out=f"out-{mode}", shots=(0,), resize_mode=mode)
        unit = plan_units(cfg)[0]
        model = WinCLIP.from_config(tiny, cfg, "tiles")
        masks240, full = eval_masks(unit, model.geometry, "240")
        region, _ = eval_masks(unit, model.geometry, "mask")
        assert all(f == (64, 112) for f in full) and all(m.shape == (240, 240) for m in masks240)
        assert all(m.shape == ((64, 112) if mode == "resize" else (64, 64)) for m in region)
        for sample, m240, mreg in zip(unit.test, masks240, region, strict=True):
            if sample.mask_path is None:
                continue
            rgb = np.asarray(Image.open(sample.mask_path).convert("RGB"))
            as_input = model.geometry.image(rgb)[:, :, 0] > 127  # the mask drawn as a photo, through the model's path
            assert (as_input == m240).mean() > 0.97, mode
            back = model.geometry.map_to_region(torch.from_numpy(m240.astype(np.float32))[None], 64, 112)[0]
            assert ((back.numpy() > 0.5) == mreg).mean() > 0.95, mode
        r = run_grid(cfg.replace(eval_resolution="mask"), progress=False, backbone=tiny)
        assert r.metrics["value"].notna().all()


def test_a_run_is_never_overwritten_by_another(synth, tiny, full_run, tmp_path):
    """run_or_load (what the notebooks call) reads a finished run of its own settings, else computes into a folder
    keyed by them; a run made with other settings keeps every byte."""
    first, full_tmp = full_run
    results = tmp_path / "results"
    shutil.copytree(full_tmp / "out", results)  # a CLI run in the results folder itself
    before = {p: p.read_bytes() for p in results.rglob("*") if p.is_file()}
    same = run_or_load(_cfg(synth, full_tmp), results, backbone=tiny, progress=False)
    assert same.out_dir == results and same.info["identity"] == run_identity(_cfg(synth, full_tmp))
    other = run_or_load(_cfg(synth, full_tmp, temperature=0.2), results, backbone=tiny, progress=False)
    assert other.out_dir.parent == results and other.out_dir.name.startswith("run-")
    assert {p: p.read_bytes() for p in before} == before  # the first run is untouched
    assert not np.allclose(other.scores["score"], first.scores["score"])
    again = run_or_load(_cfg(synth, full_tmp, temperature=0.2), results, backbone=tiny, progress=False)
    assert again.out_dir == other.out_dir and again.info["encode_counts"] == other.info["encode_counts"]


def test_text_encodes_are_counted_per_run_whatever_ran_before(synth, tiny, full_run, tmp_path):
    _, full_tmp = full_run
    shutil.copytree(full_tmp / "cache", tmp_path / "cache")
    shared = TextEmbeddingCache()
    first = run_grid(_cfg(synth, tmp_path, out="a"), progress=False, backbone=tiny, text_cache=shared)
    second = run_grid(_cfg(synth, tmp_path, out="b", shots=(0,)), progress=False, backbone=tiny, text_cache=shared)
    assert first.info["encode_counts"]["text_encodes"] == 2 and second.info["encode_counts"]["text_encodes"] == 0


def test_a_rewrite_that_keeps_size_and_mtime_is_not_taken_for_the_old_file(tiny, tmp_path, monkeypatch):
    """Finished units are recognised by the content of their files, each file read once per process (the unit key
    and the feature cache share the digest): uncompressed PNGs (all of one size), a good image copied over an
    anomalous one with its times kept (``cp -p``) — the unit is redone, and its numbers are those of a clean run of
    the changed data."""
    from winclip_lib.core import digests

    data = make_synthetic(tmp_path / "syn", categories=("disc",), n_train=2, n_test_good=2, n_test_bad=3, size=64)
    test = sorted((data / "disc" / "test").rglob("*.png"))
    for p in test:
        Image.open(p).convert("RGB").save(p, compress_level=0)
        os.utime(p, ns=(10**18, 10**18))
    by_content = {p.read_bytes(): p for p in sorted(data.rglob("*.png"))}  # every file distinct
    hashed = []
    real_file, real_bytes = digests.file_sha256, digests.bytes_sha256
    monkeypatch.setattr(digests, "file_sha256", lambda p, *a: hashed.append(Path(p)) or real_file(p, *a))
    monkeypatch.setattr(digests, "bytes_sha256", lambda b: hashed.append(by_content.get(b)) or real_bytes(b))
    cfg = _cfg(data, tmp_path, shots=(0, 1), seeds=(0,))
    first = run_grid(cfg, progress=False, backbone=tiny)
    masks = sorted((data / "disc" / "ground_truth").rglob("*.png"))
    references = [s.image_path for s in sample_references("mvtec", data, "disc", 1, 0)]
    assert len(by_content) == len(list(data.rglob("*.png")))
    assert sorted(hashed) == sorted([*test, *masks, *references])  # each input file hashed once, for key and cache
    good, bad = data / "disc" / "test" / "good" / "000.png", next(p for p in test if "good" not in p.parts)
    shutil.copy2(good, bad)
    assert [(p.stat().st_size, p.stat().st_mtime_ns) for p in (good, bad)] == [(bad.stat().st_size, 10**18)] * 2
    again = run_grid(cfg, progress=False, backbone=tiny)
    assert [u["status"] for u in again.info["units"]] == ["computed"]
    assert again.info["encode_counts"]["encoded"] == 0  # the new content is the good image's, already cached
    clean = run_grid(_cfg(data, tmp_path, out="clean", shots=(0, 1), seeds=(0,)), progress=False, backbone=tiny)
    pd.testing.assert_frame_equal(again.metrics, clean.metrics)
    assert not again.metrics["value"].equals(first.metrics["value"])


def test_masks_that_look_wrong_are_warned_about_named_and_kept_in_run_json(tiny, tmp_path, caplog, monkeypatch):
    """An anomalous image whose mask marks no pixel and a mask beside a good image: a warning naming the files when
    the unit is computed (from the masks decoded for the metrics: none is read again for it), again when it is
    reused, and in run.json."""
    from winclip_lib.datasets import scan

    def read_again(path):
        raise AssertionError(f"{path} was read again for the warning")

    monkeypatch.setattr(scan, "is_empty_mask", read_again)
    data = make_synthetic(tmp_path / "syn", categories=("disc",), n_train=2, n_test_good=2, n_test_bad=3, size=64)
    masks = sorted((data / "disc" / "ground_truth").rglob("*.png"))
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(masks[0])
    (data / "disc" / "ground_truth" / "good").mkdir()
    Image.fromarray(np.full((64, 64), 255, np.uint8)).save(data / "disc" / "ground_truth" / "good" / "001_mask.png")
    defect = masks[0].parent.name
    expected = [
        f"{data}/disc/test/good/001.png is a good test image but has a mask {data}/disc/ground_truth/good/001_mask.png",
        f"{data}/disc/test/{defect}/{masks[0].name.replace('_mask', '')} is an anomalous test image but its mask "
        f"{masks[0]} marks no pixel (all zero)",
    ]
    cfg = _cfg(data, tmp_path, shots=(0,))
    for status in ("computed", "reused"):
        caplog.clear()
        with caplog.at_level("WARNING", logger="winclip_lib"):
            r = run_grid(cfg, progress=False, backbone=tiny)
        assert r.info["units"][0]["status"] == status
        assert [m.split(" (")[0] for m in r.info["warnings"]] == [e.split(" (")[0] for e in expected]
        assert [rec.getMessage() for rec in caplog.records] == r.info["warnings"]
        assert json.loads((tmp_path / "out" / "run.json").read_text())["warnings"] == r.info["warnings"]
    monkeypatch.undo()
    clean = run_grid(_cfg(data, tmp_path, out="o2", shots=(0,), masks=False), progress=False, backbone=tiny)
    assert clean.info["warnings"] == r.info["warnings"][:1]  # without masks only the good image's mask is worth one


@pytest.mark.parametrize("kind", ["test", "ground_truth"])
def test_a_file_changed_while_its_unit_is_scored_is_not_recorded(synth, tiny, tmp_path, monkeypatch, kind):
    """A test image or a mask rewritten after its unit was scored (the results come from its old bytes, a key made
    now would name its new ones): the run fails naming the file, records nothing for the unit, and the same command
    then computes it from the new bytes — the numbers of a fresh run on the data as it now is."""
    from winclip_lib.core.digests import FileChangedError
    from winclip_lib.experiments import grid

    root = tmp_path / "data"
    shutil.copytree(synth, root)
    category = CATEGORIES[0]
    files = sorted((root / category / kind).rglob("*.png"))
    victim, other = files[0], files[-1]
    cfg = _cfg(root, tmp_path, categories={"synthetic": [category]}, shots=(0, 1), seeds=(0,))
    real = grid.score_unit

    def score_then_rewrite(*args, **kwargs):
        out = real(*args, **kwargs)
        shutil.copy(other, victim)  # rewritten while the unit is being finished
        return out

    monkeypatch.setattr(grid, "score_unit", score_then_rewrite)
    with pytest.raises(FileChangedError, match=str(victim)):
        run_grid(cfg, progress=False, backbone=tiny)
    monkeypatch.setattr(grid, "score_unit", real)
    info = json.loads((tmp_path / "out" / "run.json").read_text())
    assert info["status"].startswith("failed") and str(victim) in info["status"]
    again = run_grid(cfg, progress=False, backbone=tiny)
    assert [u["status"] for u in again.info["units"]] == ["computed"]
    fresh = run_grid(_cfg(root, tmp_path, out="fresh", cache_dir=str(tmp_path / "fresh-cache"),
                          categories={"synthetic": [category]}, shots=(0, 1), seeds=(0,)), progress=False,
                     backbone=tiny)
    pd.testing.assert_frame_equal(again.metrics, fresh.metrics)
