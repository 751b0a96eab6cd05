"""CUDA checks (skipped without a GPU; run on a lent GPU by benchmarks/gpu_check.sh): the GPU encoder agrees with
the CPU fp32 encoder, and bf16 / fp16 stay close to fp32 on the real ViT-B-16-plus-240 architecture."""

from __future__ import annotations

import copy

import pytest
import torch

from winclip_lib import WinCLIP
from winclip_lib.core.backbone import DEFAULT_MODEL, TINY_MODEL, load_backbone, wrap_model
from winclip_lib.core.encoder import encode_images
from winclip_lib.core.prompts import build_prompts
from winclip_lib.core.text_tower import encode_text

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
