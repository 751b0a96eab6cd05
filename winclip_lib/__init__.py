"""winclip_lib — WinCLIP and WinCLIP+ (Jeong et al., CVPR 2023) on OpenCLIP.

The small functional API, one concept per module:

- :mod:`winclip_lib.backbone`   — load OpenCLIP (pretrained tag, checkpoint, random weights), precision, device.
- :mod:`winclip_lib.encoder`    — window-masked image encoding: image, window and patch features in one call.
- :mod:`winclip_lib.vit_blocks` — open_clip's transformer blocks driven directly: right layout, fast path.
- :mod:`winclip_lib.prompts`    — the Compositional Prompt Ensemble and its text embeddings.
- :mod:`winclip_lib.scoring`    — zero-shot scores, harmonic aggregation (eq. 1), the zero-shot map.
- :mod:`winclip_lib.fewshot`    — WinCLIP+ reference memories and association (eqs. 2-4).
- :mod:`winclip_lib.preprocess` — images (paths, PIL, arrays) to the normalised 240 x 240 batch.
- :mod:`winclip_lib.model`      — the :class:`WinCLIP` class tying the stages together.

Around it: :mod:`datasets`, :mod:`synthetic`, :mod:`metrics` (data and evaluation), :mod:`feature_cache`,
:mod:`runner`, :mod:`cli` (the encode-once experiment grid), :mod:`report`, :mod:`viz`, :mod:`notebooks`, :mod:`demo`.
"""

from winclip_lib.backbone import (
    DEFAULT_MODEL,
    DEFAULT_PRETRAINED,
    TINY_MODEL,
    Backbone,
    WeightsUnavailableError,
    load_backbone,
    wrap_model,
)
from winclip_lib.encoder import Features, encode_images, window_indices
from winclip_lib.model import Prediction, WinCLIP
from winclip_lib.preprocess import preprocess

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_PRETRAINED",
    "TINY_MODEL",
    "Backbone",
    "Features",
    "Prediction",
    "WeightsUnavailableError",
    "WinCLIP",
    "encode_images",
    "load_backbone",
    "preprocess",
    "window_indices",
    "wrap_model",
]
__version__ = "0.1.0"
