"""The :class:`WinCLIP` model: zero-shot WinCLIP and, after :meth:`WinCLIP.fit`, few-shot WinCLIP+.

Every stage is also a plain function elsewhere (encode: :mod:`encoder`; text: :mod:`prompts`; zero-shot:
:mod:`scoring`; few-shot: :mod:`fewshot`); this class only holds the settings and the state (text embeddings,
reference memory) and calls them in order. :meth:`WinCLIP.predict_features` scores already-encoded features, which is
how the experiment runner scores many settings from one encoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from winclip_lib.backbone import Backbone, load_backbone
from winclip_lib.encoder import DEFAULT_MAX_TOKENS, DEFAULT_SCALES, Features, encode_images
from winclip_lib.fewshot import VisualMemory, few_shot_maps, fuse
from winclip_lib.preprocess import preprocess
from winclip_lib.prompts import text_embeddings
from winclip_lib.scoring import DEFAULT_TEMPERATURE, smooth, upsample, zero_shot_maps


@dataclass
class Prediction:
    """Scores and maps of a batch of B images (maps at H x W are upsampled; *_grid maps are G x G).

    Attributes:
        score: (B,) final image score — s0 zero-shot, (s0 + max visual) / 2 few-shot.
        map: (B, H, W) final anomaly map — zero-shot map, or (zero-shot + visual) / 2 few-shot.
        image_score: (B,) s0, the whole-image text score.
        zero_shot_map: (B, H, W) harmonic mean of s0 and the per-scale maps.
        scale_maps: {k: (B, G, G)} zero-shot per-scale maps (eq. 1).
        visual_map: (B, H, W) few-shot visual map (eq. 3), None zero-shot.
        visual_scale_maps: {k: (B, G, G)} few-shot per-scale maps; visual_patch_map (B, G, G) the patch map.
    """

    score: torch.Tensor
    map: torch.Tensor
    image_score: torch.Tensor
    zero_shot_map: torch.Tensor
    scale_maps: dict[int, torch.Tensor]
    visual_map: torch.Tensor | None = None
    visual_scale_maps: dict[int, torch.Tensor] = field(default_factory=dict)
    visual_patch_map: torch.Tensor | None = None


class WinCLIP:
    """WinCLIP / WinCLIP+.

    Args:
        backbone: a :class:`Backbone`; None loads the default (``ViT-B-16-plus-240`` / ``laion400m_e31``).
        class_name: the object's name in words, for the prompt ensemble.
        text: (2, D) text embeddings [normal, anomalous] to use instead of the prompt ensemble.
        scales: window scales in patches (paper: (2, 3)).
        temperature: softmax temperature T of the text scores (0.07).
        template_set: CPE template set name (see :data:`winclip_lib.prompts.TEMPLATE_SETS`) or a list.
        normalize_each: normalise each prompt embedding before averaging.
        extra_normal / extra_anomalous: task-specific state words with one ``{}`` added to the ensemble.
        patch_ln_post: patch memory tokens after ``ln_post`` (True) or without it.
        output_size: side of the returned maps (default: the model's input size, 240).
        smoothing_sigma: Gaussian smoothing of the final maps in pixels (0 = off, the default).
        batch_size: images per encoding pass. max_tokens: tokens per transformer call.
    """

    def __init__(
        self,
        backbone: Backbone | None = None,
        class_name: str = "object",
        *,
        text: torch.Tensor | None = None,
        scales: Sequence[int] = DEFAULT_SCALES,
        temperature: float = DEFAULT_TEMPERATURE,
        template_set: str | Sequence[str] = "paper",
        normalize_each: bool = False,
        extra_normal: Sequence[str] = (),
        extra_anomalous: Sequence[str] = (),
        patch_ln_post: bool = True,
        output_size: int | None = None,
        smoothing_sigma: float = 0.0,
        batch_size: int = 8,
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        self.backbone = backbone if backbone is not None else load_backbone()
        self.scales = tuple(int(k) for k in scales)
        if not self.scales:
            raise ValueError("scales must name at least one window size")
        self.temperature = float(temperature)
        self.template_set = template_set
        self.normalize_each = normalize_each
        self.extra_normal, self.extra_anomalous = tuple(extra_normal), tuple(extra_anomalous)
        self.patch_ln_post = patch_ln_post
        self.output_size = output_size or self.backbone.image_size
        self.smoothing_sigma = smoothing_sigma
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.memory: VisualMemory | None = None
        self.class_name = class_name
        self._text = self._check_text(text) if text is not None else None

    # -- text ------------------------------------------------------------------------------------------------
    def _check_text(self, text: torch.Tensor) -> torch.Tensor:
        if text.ndim != 2 or text.shape != (2, self.backbone.embed_dim):
            raise ValueError(f"text embeddings must be (2, {self.backbone.embed_dim}), got {tuple(text.shape)}")
        return text.float()

    def set_class(self, class_name: str | None = None, text: torch.Tensor | None = None) -> WinCLIP:
        """Switch the class (prompt ensemble) or set text embeddings directly."""
        if class_name is not None:
            self.class_name = class_name
        self._text = self._check_text(text) if text is not None else None
        return self

    @property
    def text(self) -> torch.Tensor:
        """(2, D) text embeddings [normal, anomalous] (computed and cached on first use)."""
        if self._text is None:
            self._text = text_embeddings(self.backbone, self.class_name, self.template_set,
                                         normalize_each=self.normalize_each, extra_normal=self.extra_normal,
                                         extra_anomalous=self.extra_anomalous)
        return self._text

    # -- encoding --------------------------------------------------------------------------------------------
    def preprocess(self, images) -> torch.Tensor:
        mean, std = self.backbone.mean_std
        return preprocess(images, self.backbone.image_size, mean=mean, std=std)

    def encode(self, images) -> Features:
        """Encode images (a normalised (B, 3, S, S) tensor, or anything :func:`preprocess` takes) in batches."""
        x = images if isinstance(images, torch.Tensor) else self.preprocess(images)
        if x.ndim == 4 and x.shape[0] == 0:
            raise ValueError("empty batch: nothing to encode")
        parts = [
            encode_images(self.backbone, x[i : i + self.batch_size], self.scales, patch_ln_post=self.patch_ln_post,
                          max_tokens=self.max_tokens)
            for i in range(0, x.shape[0], self.batch_size)
        ]
        return Features.cat(parts)

    # -- few-shot --------------------------------------------------------------------------------------------
    def fit(self, references) -> WinCLIP:
        """Build the WinCLIP+ memories from k normal reference images (or their :class:`Features`)."""
        if not isinstance(references, Features):
            if isinstance(references, (list, tuple)) and len(references) == 0:
                raise ValueError("fit needs at least one normal reference image (got 0)")
            references = self.encode(references)
        self.memory = VisualMemory.from_features(references)
        return self

    def reset(self) -> WinCLIP:
        """Forget the references: back to zero-shot."""
        self.memory = None
        return self

    # -- scoring ---------------------------------------------------------------------------------------------
    def predict_features(self, features: Features) -> Prediction:
        """Score encoded features: zero-shot, plus few-shot when fitted."""
        zs = zero_shot_maps(features, self.text, self.temperature)
        s0, z = zs["image_score"], zs["map"]
        out = self.output_size
        if self.memory is None:
            final, score, vis = z, s0, None
        else:
            vis = few_shot_maps(features, self.memory)
            final, score = fuse(z, s0, vis["map"])
        return Prediction(
            score=score,
            map=smooth(upsample(final, out), self.smoothing_sigma),
            image_score=s0,
            zero_shot_map=upsample(z, out),
            scale_maps=zs["scale_maps"],
            visual_map=None if vis is None else upsample(vis["map"], out),
            visual_scale_maps={} if vis is None else vis["scale_maps"],
            visual_patch_map=None if vis is None else vis["patch_map"],
        )

    def predict(self, images) -> Prediction:
        """Encode and score images: per-image ``score`` (B,) and ``map`` (B, H, W), with the intermediate maps."""
        return self.predict_features(self.encode(images))
