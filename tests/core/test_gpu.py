"""CUDA checks (skipped without a GPU; run on a lent GPU by benchmarks/gpu_check.sh): the GPU encoder agrees with
the CPU fp32 encoder, bf16 / fp16 stay close to fp32 on the real ViT-B-16-plus-240 architecture, and the metrics
computed on the GPU equal the numpy reference; a batch normalised on the GPU equals the CPU's."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from winclip_lib import WinCLIP
from winclip_lib.core.backbone import DEFAULT_MODEL, TINY_MODEL, load_backbone, wrap_model
from winclip_lib.core.encoder import encode_images
from winclip_lib.core.prompts import build_prompts
from winclip_lib.core.text_tower import encode_text
from winclip_lib.evaluation import device_metrics as D
from winclip_lib.evaluation import metrics as M

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _images(n: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, 240, 240, generator=torch.Generator().manual_seed(0))


def test_cuda_fp32_equals_cpu_fp32():
    cpu = load_backbone(TINY_MODEL, None, precision="fp32", device="cpu")
    gpu = wrap_model(copy.deepcopy(cpu.model), TINY_MODEL, cpu.weights_id, precision="fp32", device="cuda")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    a, b = encode_images(cpu, _images(), (2, 3)), encode_images(gpu, _images(), (2, 3)).to("cpu")
    for k in a.windows:
        torch.testing.assert_close(b.windows[k], a.windows[k], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(b.patches, a.patches, rtol=1e-4, atol=1e-4)


def test_cuda_cut_text_tower_equals_cpu():
    """The cut causal text tower on CUDA (scaled_dot_product_attention with the mask) = open_clip's on the CPU."""
    cpu = load_backbone(TINY_MODEL, None, precision="fp32", device="cpu")
    gpu = wrap_model(copy.deepcopy(cpu.model), TINY_MODEL, cpu.weights_id, precision="fp32", device="cuda")
    torch.backends.cuda.matmul.allow_tf32 = False
    prompts = build_prompts("bottle")["anomalous"]
    with torch.inference_mode():
        expected = cpu.model.encode_text(cpu.tokenizer(prompts))
    torch.testing.assert_close(encode_text(gpu, prompts).cpu(), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_real_architecture_low_precision_maps_stay_close(precision):
    fp32 = load_backbone(DEFAULT_MODEL, None, precision="fp32", device="cuda")
    low = wrap_model(copy.deepcopy(fp32.model), DEFAULT_MODEL, fp32.weights_id, precision=precision, device="cuda")
    x, refs = _images(4), _images(8)[4:]
    p32 = WinCLIP(fp32, "object").fit(refs).predict(x)
    plow = WinCLIP(low, "object").fit(refs).predict(x)
    assert (p32.map - plow.map).abs().max().item() < 0.02
    assert (p32.score - plow.score).abs().max().item() < 0.02


def test_auto_precision_on_a_gpu_is_bf16_where_supported():
    b = load_backbone(TINY_MODEL, None, precision="auto", device="cuda")
    assert b.precision == ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    assert b.precision_choice.source == "cuda"


def test_metrics_on_the_gpu_equal_the_numpy_reference():
    """Masks prepared on CUDA, maps and scores there: every metric equals the numpy reference to 1e-9 (continuous and
    quantised float32 maps, both AUPRO methods, an interpolated and the full FPR range, images of different sizes,
    an all-normal category with the reference's NaN warnings)."""
    rng = np.random.default_rng(0)
    n, h, w = 16, 96, 80
    masks = np.zeros((n, h, w), bool)
    for i in range(n // 2):
        for _ in range(3):
            y, x, dy, dx = rng.integers(0, h - 12), rng.integers(0, w - 12), *rng.integers(1, 12, size=2)
            masks[i, y : y + dy, x : x + dx] = True
        masks[i, rng.integers(0, h), rng.integers(0, w)] = True
    noisy = (rng.normal(size=masks.shape) + masks * 1.2).astype(np.float32)
    labels = masks.any(axis=(1, 2))
    targets = D.PixelTargets.from_masks(masks, device="cuda")
    assert targets.defect_index.is_cuda and targets.defect_weight.is_cuda
    for maps in (noisy, np.round(noisy * 4) / 4):
        scores = maps.max(axis=(1, 2)).astype(np.float64)
        for method in M.AUPRO_METHODS:
            for limit in (0.3, 1.0):
                ref = M.evaluate_category(labels, scores, masks, maps, limit, method)
                got = D.category_metrics(torch.from_numpy(labels).cuda(), torch.from_numpy(scores).cuda(),
                                         torch.from_numpy(maps).cuda(), targets, limit, method)
                for k in M.METRIC_NAMES:
                    assert abs(got[k] - ref[k]) <= 1e-9, (method, limit, k, ref[k], got[k])
    cut = [m[: h - 8 * (i % 3)] for i, m in enumerate(masks)]  # images of three sizes
    cut_maps = [torch.from_numpy(m[: h - 8 * (i % 3)]).cuda() for i, m in enumerate(noisy)]
    on_cpu = D.category_metrics(labels, noisy.max(axis=(1, 2)), [m.cpu() for m in cut_maps],
                                D.PixelTargets.from_masks(cut))
    on_gpu = D.category_metrics(labels, noisy.max(axis=(1, 2)), cut_maps, D.PixelTargets.from_masks(cut, "cuda"))
    assert all(abs(on_gpu[k] - on_cpu[k]) <= 1e-9 for k in M.METRIC_NAMES)
    with pytest.warns(M.MetricWarning, match="no defect pixel"):
        normal = D.category_metrics(np.zeros(n), noisy.max(axis=(1, 2)), torch.from_numpy(noisy).cuda(),
                                    D.PixelTargets.from_masks(np.zeros_like(masks), device="cuda"))
    assert all(np.isnan(v) for v in normal.values())


def test_a_batch_normalised_on_the_gpu_equals_the_cpu_bit_for_bit():
    from winclip_lib.core.geometry import Geometry
    from winclip_lib.core.preprocess import normalize
    from winclip_lib.experiments.image_loader import ImageLoader

    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (5, 240, 240, 3), dtype=np.uint8)
    batch[0, 0, :256] = np.arange(256, dtype=np.uint8)[:, None]  # every byte in every channel
    on_cpu = normalize(batch)
    on_gpu = normalize(torch.from_numpy(batch).cuda())
    assert on_gpu.device.type == "cuda" and torch.equal(on_gpu.cpu(), on_cpu)
    loader = ImageLoader(Geometry(240, "resize"), (0.5, 0.4, 0.3), (0.2, 0.25, 0.3), torch.device("cuda"))
    got = loader.batch(list(batch))
    assert got.device.type == "cuda" and torch.equal(got.cpu(), normalize(batch, (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)))
