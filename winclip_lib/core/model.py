"""The :class:`WinCLIP` model: zero-shot WinCLIP and, after :meth:`WinCLIP.fit`, few-shot WinCLIP+.

Every stage is also a plain function elsewhere (encode: :mod:`~winclip_lib.core.encoder`; text:
:mod:`~winclip_lib.core.prompts`; zero-shot: :mod:`~winclip_lib.core.scoring`; few-shot:
:mod:`~winclip_lib.core.fewshot`); this class only holds the settings
(:class:`~winclip_lib.core.options.WinCLIPOptions`) and the state (text embeddings, reference memory) and calls them
in order. :meth:`WinCLIP.predict_features` scores already-encoded features, which is how the experiment runner
scores many settings from one encoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from winclip_lib.core.backbone import Backbone, load_backbone
from winclip_lib.core.encoder import DEFAULT_MAX_TOKENS, encode_images, resolve_batch_size
from winclip_lib.core.features import Features
from winclip_lib.core.fewshot import ReferenceMaxima, VisualMemory, few_shot_maps, fuse, unit_features
from winclip_lib.core.geometry import Geometry
from winclip_lib.core.options import WinCLIPOptions
from winclip_lib.core.preprocess import preprocess
from winclip_lib.core.prompts import TextEmbeddingCache, text_embeddings
from winclip_lib.core.scoring import smooth, upsample, zero_shot_image_score, zero_shot_maps

__all__ = ["Prediction", "Queries", "WinCLIP"]


@dataclass
class Prediction:
    """Scores and maps of a batch of B images (maps at H x W are upsampled over the model input; *_grid maps are
    G x G). :meth:`WinCLIP.maps_on_photo` carries a map back onto a photo's own pixels.

    Attributes:
        score: (B,) final image score — s0 zero-shot, (s0 + max visual) / 2 few-shot (or the options' variants).
        map: (B, H, W) final anomaly map — zero-shot map, or (zero-shot + visual) / 2 few-shot.
        image_score: (B,) s0, the whole-image text score.
        zero_shot_map: (B, H, W) harmonic mean of s0 and the per-scale maps (None when scored with
            ``details=False``).
        scale_maps: {k: (B, G, G)} zero-shot per-scale maps (eq. 1).
        visual_map: (B, H, W) few-shot visual map (eq. 3), None zero-shot (and with ``details=False``).
        visual_scale_maps: {k: (B, G, G)} few-shot per-scale maps; visual_patch_map (B, G, G) the patch map.
    """

    score: torch.Tensor
    map: torch.Tensor
    image_score: torch.Tensor
    zero_shot_map: torch.Tensor | None
    scale_maps: dict[int, torch.Tensor]
    visual_map: torch.Tensor | None = None
    visual_scale_maps: dict[int, torch.Tensor] = field(default_factory=dict)
    visual_patch_map: torch.Tensor | None = None


@dataclass
class Queries:
    """A batch of encoded images prepared once for scoring against many references (:meth:`WinCLIP.prepare`): what
    does not depend on the references — the zero-shot maps and scores, and the unit-norm query features — computed
    once, with the very operations :meth:`WinCLIP.predict_features` runs, so every score and map is bit-identical.

    Attributes:
        features: the batch, with its windows and patch tokens unit-norm when ``unit_norm``
            (:func:`~winclip_lib.core.fewshot.unit_features`). zero_shot: the output of
            :func:`~winclip_lib.core.scoring.zero_shot_maps`. language: (B,) the zero-shot image score.
        text: the text embeddings they were made with. maxima: the best cosines against each candidate reference
            (:class:`~winclip_lib.core.fewshot.ReferenceMaxima`), when prepared with references.
    """

    features: Features
    zero_shot: dict[str, Any]
    language: torch.Tensor
    text: torch.Tensor = field(repr=False)
    unit_norm: bool = True
    maxima: ReferenceMaxima | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.features)

    @staticmethod
    def cat(parts: Sequence[Queries]) -> Queries:
        """Batches prepared with the same text (and candidate references) as one batch, in order — scored as one
        (:meth:`WinCLIP.predict_draws`), the same numbers as each part scored alone: every step after
        :meth:`WinCLIP.prepare` acts on each image alone (tested bit for bit)."""
        if not parts:
            raise ValueError("Queries.cat needs at least one part")
        first = parts[0]
        if len(parts) == 1:
            return first
        if any(p.text is not first.text or p.unit_norm != first.unit_norm
               or (p.maxima is None) != (first.maxima is None) for p in parts):
            raise ValueError("these queries were prepared differently (text, unit norm or references)")
        return Queries(Features.cat([p.features for p in parts]), _cat_batches([p.zero_shot for p in parts]),
                       torch.cat([p.language for p in parts]), first.text, first.unit_norm,
                       None if first.maxima is None else ReferenceMaxima.cat([p.maxima for p in parts]))


def _cat_batches(parts: list[Any]) -> Any:
    """Tensors (B_i, ...), or dicts of them at any depth, joined along the batch dimension."""
    if isinstance(parts[0], torch.Tensor):
        return torch.cat(parts)
    return {key: _cat_batches([p[key] for p in parts]) for key in parts[0]}


class WinCLIP:
    """WinCLIP / WinCLIP+.

    Args:
        backbone: a :class:`~winclip_lib.core.backbone.Backbone`; None loads the default (``ViT-B-16-plus-240`` /
            ``laion400m_e31``).
        class_name: the object's name in words, for the prompt ensemble.
        text: (2, D) text embeddings [normal, anomalous] to use instead of the prompt ensemble.
        options: the method's settings (:class:`~winclip_lib.core.options.WinCLIPOptions`, the paper's by default);
            any of its fields may also be passed by name, e.g. ``WinCLIP(backbone, "screw", temperature=0.01)``.
        text_cache: a :class:`~winclip_lib.core.prompts.TextEmbeddingCache` shared between models (each class is then
            encoded once); None keeps the text in this model only.
        output_size: side of the returned maps (default: the model's input size, 240).
        max_tokens: tokens per transformer call (bounds memory).
    """

    def __init__(
        self,
        backbone: Backbone | None = None,
        class_name: str = "object",
        *,
        text: torch.Tensor | None = None,
        options: WinCLIPOptions | None = None,
        text_cache: TextEmbeddingCache | None = None,
        output_size: int | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        **settings: Any,
    ) -> None:
        self.backbone = backbone if backbone is not None else load_backbone()
        base = options or WinCLIPOptions()
        self.options = base.replace(**settings) if settings else base
        self.text_cache = text_cache
        self.output_size = output_size or self.backbone.image_size
        self.max_tokens = max_tokens
        self.memory: VisualMemory | None = None
        self.class_name = class_name
        self._text = self._check_text(text) if text is not None else None

    @classmethod
    def from_config(cls, backbone: Backbone, config: Any, class_name: str, **kwargs: Any) -> WinCLIP:
        """A model with the method's settings of ``config`` (any object with the fields of
        :class:`~winclip_lib.core.options.WinCLIPOptions`, e.g. a ``RunConfig``)."""
        return cls(backbone, class_name, options=WinCLIPOptions.from_config(config), **kwargs)

    @property
    def geometry(self) -> Geometry:
        """How photos become the model's input, and how maps go back onto them."""
        return Geometry(self.backbone.image_size, self.options.resize_mode)

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
        """(2, D) text embeddings [normal, anomalous] (computed on first use)."""
        if self._text is None:
            o = self.options
            self._text = text_embeddings(self.backbone, self.class_name, o.template_set,
                                         normalize_each=o.normalize_each, extra_normal=o.extra_normal,
                                         extra_anomalous=o.extra_anomalous, ensemble_kind=o.prompt_ensemble,
                                         cache=self.text_cache)
        return self._text

    # -- encoding --------------------------------------------------------------------------------------------
    def preprocess(self, images) -> torch.Tensor:
        """Images (paths, PIL images, uint8 arrays) -> the normalised (B, 3, S, S) batch, in this model's
        geometry."""
        mean, std = self.backbone.mean_std
        return preprocess(images, self.backbone.image_size, self.options.resize_mode, mean=mean, std=std)

    def encode(self, images) -> Features:
        """Encode images (a normalised (B, 3, S, S) tensor, or anything :meth:`preprocess` takes) in batches."""
        x = images if isinstance(images, torch.Tensor) else self.preprocess(images)
        if x.ndim == 4 and x.shape[0] == 0:
            raise ValueError("empty batch: nothing to encode")
        o = self.options
        n = resolve_batch_size(o.batch_size, self.backbone, max_tokens=self.max_tokens)
        parts = [
            encode_images(self.backbone, x[i : i + n], max_tokens=self.max_tokens, **o.feature_request())
            for i in range(0, x.shape[0], n)
        ]
        return Features.cat(parts)

    # -- few-shot --------------------------------------------------------------------------------------------
    def fit(self, references) -> WinCLIP:
        """Build the WinCLIP+ memories from k normal reference images (or their :class:`Features`)."""
        if not isinstance(references, Features):
            if isinstance(references, list | tuple) and len(references) == 0:
                raise ValueError("fit needs at least one normal reference image (got 0)")
            references = self.encode(references)
        self.memory = VisualMemory.from_features(references)
        return self

    def reset(self) -> WinCLIP:
        """Forget the references: back to zero-shot."""
        self.memory = None
        return self

    # -- scoring ---------------------------------------------------------------------------------------------
    def prepare(self, features: Features, unit_norm: bool = True, references: Features | None = None) -> Queries:
        """What scoring ``features`` under any references shares: the zero-shot results and the unit-norm query
        features (:class:`Queries`), for :meth:`predict_features` to score it many times (after each :meth:`fit`).
        ``unit_norm=False`` leaves the features as they are (for zero-shot scoring only). ``references``: candidate
        references, unit-norm (:func:`~winclip_lib.core.fewshot.unit_features`), compared once with every query
        (:class:`~winclip_lib.core.fewshot.ReferenceMaxima`), so that any draw of them is scored without a
        :meth:`fit` (``predict_features(..., references=positions)``)."""
        o = self.options
        zs = zero_shot_maps(features, self.text, o.temperature, window_aggregation=o.window_aggregation,
                            image_term=o.image_term, zero_shot_map=o.zero_shot_map, dense_features=o.dense_features,
                            projection=self.backbone.visual.proj)
        language = zero_shot_image_score(zs, features, self.text, o.temperature, o.image_score)
        unit = unit_features(features) if unit_norm or references is not None else features
        maxima = None if references is None else ReferenceMaxima.compute(unit, references, o.memories)
        return Queries(unit, zs, language, self.text, unit_norm or references is not None, maxima)

    def predict_features(self, features: Features | Queries, *, details: bool = True,
                         references: torch.Tensor | None = None) -> Prediction:
        """Score encoded features (or a batch :meth:`prepare` made with this model's text): zero-shot, plus few-shot
        when fitted — or, for queries prepared with candidate references, few-shot with the candidates at the
        positions ``references`` (a LongTensor; the same numbers as after fitting those references).
        ``details=False`` leaves out the upsampled intermediate maps (``zero_shot_map``, ``visual_map``), which only
        cost time when nobody looks at them."""
        o = self.options
        queries = features if isinstance(features, Queries) else self.prepare(features, self.memory is not None)
        if queries.text is not self.text:
            raise ValueError("these queries were prepared with other text embeddings: prepare them with this model")
        if references is not None and queries.maxima is None:
            raise ValueError("references given by position need queries prepared with the candidate references")
        zs, language = queries.zero_shot, queries.language
        s0, z = zs["image_score"], zs["map"]
        out = self.output_size
        if references is not None:
            vis = queries.maxima.few_shot_maps(references.to(queries.maxima.device), o.visual_aggregation)
            final, score = fuse(z, language, vis["map"], o.fusion, o.fewshot_image_score)
        elif self.memory is None:
            final, score, vis = z, language, None
        else:
            vis = few_shot_maps(queries.features, self.memory, o.memories, o.visual_aggregation,
                                normalized=queries.unit_norm)
            final, score = fuse(z, language, vis["map"], o.fusion, o.fewshot_image_score)
        return Prediction(
            score=score,
            map=smooth(upsample(final, out), o.smoothing_sigma),
            image_score=s0,
            zero_shot_map=upsample(z, out) if details else None,
            scale_maps=zs["scale_maps"],
            visual_map=None if vis is None or not details else upsample(vis["map"], out),
            visual_scale_maps={} if vis is None else vis["scale_maps"],
            visual_patch_map=None if vis is None else vis["patch_map"],
        )

    def predict_draws(self, queries: Queries, draws: Sequence[torch.Tensor | None], out: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Image scores (S, B) and maps (S, B, H, W) of prepared queries under S draws of their candidate references
        (LongTensors of positions; None: zero-shot), computed together: for each draw the ``score`` and ``map`` of
        ``predict_features(queries, details=False, references=draw)``, the same numbers (every step acts on each
        image and draw alone; tested bit for bit).

        ``out``: a 1-D float32 tensor on the model's device whose memory takes the maps, grown as needed
        (:func:`~winclip_lib.core.scoring.upsample`); without smoothing the maps returned are a view of it, overwritten
        when it is passed again."""
        o = self.options
        if queries.text is not self.text:
            raise ValueError("these queries were prepared with other text embeddings: prepare them with this model")
        if not draws:
            raise ValueError("no draw of references given (None stands for zero-shot)")
        few = [d for d in draws if d is not None]
        if few and queries.maxima is None:
            raise ValueError("references given by position need queries prepared with the candidate references")
        z, language, b = queries.zero_shot["map"], queries.language, len(queries)
        fused = iter(())
        if few:
            device = queries.maxima.device
            vis = queries.maxima.few_shot_maps_of([d.to(device) for d in few], o.visual_aggregation)["map"]
            final, score = fuse(z.repeat(len(few), 1, 1), language.repeat(len(few)), vis, o.fusion,
                                o.fewshot_image_score)
            fused = zip(final.split(b), score.split(b), strict=True)
        finals, scores = zip(*[(z, language) if d is None else next(fused) for d in draws], strict=True)
        maps = upsample(torch.cat(finals), self.output_size, out=out)  # one call for every draw
        maps = maps.reshape(len(draws), b, *maps.shape[1:])
        if o.smoothing_sigma > 0:  # batch by batch, as predict_features smooths
            maps = torch.stack([smooth(m, o.smoothing_sigma) for m in maps])
        return torch.stack(scores), maps

    def predict(self, images) -> Prediction:
        """Encode and score images: per-image ``score`` (B,) and ``map`` (B, H, W), with the intermediate maps."""
        return self.predict_features(self.encode(images))

    def maps_on_photo(self, maps: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """(B, S', S') maps over the model input -> (B, height, width) over a photo of that size (NaN where the
        geometry does not see the photo: outside the centre crop of ``resize_mode="crop"``)."""
        return self.geometry.map_to_image(maps, height, width)
