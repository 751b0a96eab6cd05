"""Benchmarks of the repository (not part of the installed package): run them as modules from the checkout,

    python -m benchmarks.bench_speed [--device cpu|cuda] [--quick] [--out build/bench/speed_<device>.json]
    python -m benchmarks.bench_aupro [--n-images 100]

``bench_speed`` (``make bench``) times our encoder and scoring against a plain baseline written here
(:mod:`~benchmarks.baseline`), with the FLOP model (:mod:`~benchmarks.flops`), the hardware's ceiling
(:mod:`~benchmarks.hardware`), the ``auto`` precision's choice (:mod:`~benchmarks.auto_precision`) and one timing
helper (:mod:`~benchmarks.timing`).
"""
