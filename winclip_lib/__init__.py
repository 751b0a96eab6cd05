"""winclip_lib — WinCLIP and WinCLIP+ (Jeong et al., CVPR 2023) on OpenCLIP.

Layers, each importing only from the ones below it (a contract checked by the tests, see ``.importlinter`` and
``docs/ARCHITECTURE.md``):

- :mod:`winclip_lib.cli`         — the console command ``winclip``, one module per sub-command.
- :mod:`winclip_lib.inspection`  — ``winclip predict``: your own images scored, the inspection page.
- :mod:`winclip_lib.report`      — tables beside the paper's numbers, figures, the notebooks' helpers.
- :mod:`winclip_lib.experiments` — one configuration, the encode-once feature cache, the experiment grid and its
  results.
- :mod:`winclip_lib.datasets` and :mod:`winclip_lib.evaluation` — datasets on disk; metrics.
- :mod:`winclip_lib.core`        — the method: backbone, window encoder, prompts, scoring, WinCLIP+, the model.

The names below are the small public API of the method. ``__version__`` is the installed package's version, defined
once in ``pyproject.toml``.
"""

import gc as _gc

# The garbage collector paused while torch, open_clip and the package load, and what they made then put in its oldest
# generation at once: those objects live as long as the process, so the ~1,100 passes the collector made over them
# while they loaded were wasted — 0.64 s of the command's 3.38 s import on the 2-core EPYC, which now takes 2.67 s
# (benchmarks/bench_import.py). They wait for a full pass, as they would have after passing through the younger ones.
_collecting, _frozen = _gc.isenabled(), _gc.get_freeze_count()
_gc.disable()

try:
    import os as _os
    import sys as _sys
    from importlib.metadata import PackageNotFoundError, version

    if "torch" not in _sys.modules:
        # Idle OpenMP threads sleep instead of spinning (unless the user chose): on a few cores the encoder's spinning
        # threads took the cores the decoder and writer threads needed, and theirs the encoder's — measured on 2 cores
        # with benchmarks/bench_grid.py, the grid ran 2-6 times slower per stage with the default policy. libgomp reads
        # this once, when torch loads it.
        _os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if "numpy" not in _sys.modules and not {"NPY_DISABLE_CPU_FEATURES", "NPY_ENABLE_CPU_FEATURES"} & set(_os.environ):
        # numpy's AVX-512 sort is 5x slower than its AVX2 sort on AMD Zen 4 (and only there): see core/cpus.py. numpy
        # reads this once, when it is imported.
        from winclip_lib.core.cpus import numpy_features_to_disable

        if (_disable := numpy_features_to_disable()) is not None:
            _os.environ["NPY_DISABLE_CPU_FEATURES"] = _disable
        del numpy_features_to_disable  # not part of the package's names

    from winclip_lib.core.backbone import (
        DEFAULT_MODEL,
        DEFAULT_PRETRAINED,
        TINY_MODEL,
        Backbone,
        WeightsUnavailableError,
        load_backbone,
        wrap_model,
    )
    from winclip_lib.core.checkpoints import CheckpointError, WeightsVerdict
    from winclip_lib.core.encoder import encode_images, window_indices
    from winclip_lib.core.features import Features
    from winclip_lib.core.model import Prediction, WinCLIP
    from winclip_lib.core.openclip_adapter import UnsupportedOpenCLIPError
    from winclip_lib.core.options import WinCLIPOptions
    from winclip_lib.core.preprocess import preprocess
finally:
    if not _frozen:  # (objects the user froze stay frozen)
        _gc.freeze()  # every object tracked now, moved to the oldest generation (unfreeze puts them there)
        _gc.unfreeze()
    if _collecting:
        _gc.enable()

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_PRETRAINED",
    "TINY_MODEL",
    "Backbone",
    "CheckpointError",
    "Features",
    "Prediction",
    "UnsupportedOpenCLIPError",
    "WeightsUnavailableError",
    "WeightsVerdict",
    "WinCLIP",
    "WinCLIPOptions",
    "encode_images",
    "load_backbone",
    "preprocess",
    "window_indices",
    "wrap_model",
]


def _installed_version() -> str:
    try:
        return version("winclip_lib")
    except PackageNotFoundError:  # imported from a checkout that was not installed (pip install -e .)
        return "0+unknown"


__version__ = _installed_version()
