"""The CLIP normalisation by table lookup: bit-identical to torch's float32 arithmetic on every pixel."""

import numpy as np
import pytest
import torch
from open_clip import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

from winclip_lib.core.preprocess import normalize, normalize_into


def _arithmetic(batch: np.ndarray, mean, std) -> torch.Tensor:
    """The normalisation written out, as the library computed it before the table."""
    x = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32)[None, :, None, None]
    s = torch.tensor(std, dtype=torch.float32)[None, :, None, None]
    return (x - m) / s


@pytest.mark.parametrize(("mean", "std"), [(OPENAI_DATASET_MEAN, OPENAI_DATASET_STD),
                                           ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
                                           ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
@pytest.mark.parametrize("shape", [(8, 240, 240, 3), (3, 17, 5, 3), (1, 1, 1, 3)])
def test_equals_the_arithmetic_bit_for_bit(mean, std, shape):
    rng = np.random.default_rng(sum(shape))
    batch = rng.integers(0, 256, shape, dtype=np.uint8)
    batch.reshape(-1, 3)[:256] = np.arange(min(256, batch.size // 3), dtype=np.uint8)[:, None]  # every byte in
    got = normalize(batch, mean, std)
    assert got.dtype == torch.float32 and got.shape == (shape[0], 3, shape[1], shape[2])
    assert torch.equal(got, _arithmetic(batch, mean, std))


def test_every_byte_of_every_channel():
    batch = np.broadcast_to(np.arange(256, dtype=np.uint8)[None, :, None, None], (2, 256, 7, 3)).copy()
    batch[1] = batch[1, ::-1]
    assert torch.equal(normalize(batch), _arithmetic(batch, OPENAI_DATASET_MEAN, OPENAI_DATASET_STD))
    assert normalize(batch)[0, 0, 0, 0].item() == pytest.approx(-OPENAI_DATASET_MEAN[0] / OPENAI_DATASET_STD[0])


def test_strided_and_tensor_inputs():
    rng = np.random.default_rng(1)
    big = rng.integers(0, 256, (4, 30, 40, 3), dtype=np.uint8)
    view = big[:, ::2, 5:25]  # not contiguous
    assert torch.equal(normalize(view), _arithmetic(np.ascontiguousarray(view), OPENAI_DATASET_MEAN,
                                                    OPENAI_DATASET_STD))
    assert torch.equal(normalize(torch.from_numpy(big)), normalize(big))


@pytest.mark.parametrize("bad", [np.zeros((2, 8, 8, 3), np.float32), np.zeros((8, 8, 3), np.uint8),
                                 np.zeros((2, 8, 8, 4), np.uint8)])
def test_what_is_not_a_uint8_rgb_batch_is_refused(bad):
    with pytest.raises(ValueError, match="uint8 batch"):
        normalize(bad)


def test_normalize_into_writes_one_image_in_its_place_of_a_batch():
    rng = np.random.default_rng(4)
    batch = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    out = np.full((3, 3, 16, 16), np.nan, np.float32)
    for j in (2, 0, 1):
        assert np.shares_memory(normalize_into(batch[j], out[j]), out)
    assert torch.equal(torch.from_numpy(out), normalize(batch))
    with pytest.raises(ValueError, match="float32 of shape"):
        normalize_into(batch[0], np.empty((16, 16, 3), np.float32))
    with pytest.raises(ValueError, match="uint8 images"):
        normalize_into(batch[0].astype(np.float32), out[0])
