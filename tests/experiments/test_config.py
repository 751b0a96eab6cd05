"""RunConfig: every named-choice setting refuses an unknown value, listing its real choices."""

from __future__ import annotations

import pytest

from winclip_lib.experiments.config import RunConfig


@pytest.mark.parametrize(("setting", "what", "choices"), [
    ("fusion", "fusion", "mean, sum, harmonic, visual"),
    ("image_score", "image score", None),
    ("patch_tokens", "patch tokens", None),
    ("mask_resize", "mask resize", "area, nearest, bilinear"),
    ("aupro", "AUPRO method", "exact, thresholds200"),
    ("reference_sampling", "reference sampling", "permutation, with_replacement"),
    ("class_names", "class-name style", None),
])
def test_every_named_choice_rejects_an_unknown_value_listing_the_valid_ones(setting, what, choices):
    with pytest.raises(ValueError, match=f"unknown {what} 'nope'; choose one of ") as err:
        RunConfig(**{setting: "nope"})
    listed = str(err.value).split("choose one of ")[1].split(", ")
    default = getattr(RunConfig(), setting)
    assert default in listed  # the list is the setting's real choices, the default among them
    if choices is not None:
        assert listed == choices.split(", ")
