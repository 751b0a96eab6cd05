"""What one encoding pass gives for a batch of images: :class:`Features`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch

__all__ = ["Features"]


@dataclass
class Features:
    """What one encoding pass gives for a batch of B images.

    Attributes:
        image: (B, D) projected class-token embedding of the whole image (not normalised).
        windows: {k: (B, n_k, D)} projected class-token embedding of every k x k window (not normalised).
        patches: (B, G*G, W) patch tokens of the whole image, not projected: by default the last block's output
            after ``ln_post`` (``meta["patch_tokens"]`` names the variant, see
            :data:`winclip_lib.core.encoder.PATCH_TOKENS`).
        grid: G, patches per side.
        stride: the window stride.
        meta: what the encoder was asked for (``patch_tokens``: the variant in ``patches``).
        extra: {name: (B, ...)} further tensors of the same images: other patch-token variants
            (``"patches.<name>"``), the multi-crop embeddings (``"crops"``, (B, 5, D)) and the tiles
            (``"tiles.<k>"``, (B, n_k, D)).
    """

    image: torch.Tensor
    windows: dict[int, torch.Tensor]
    patches: torch.Tensor
    grid: int
    stride: int = 1
    meta: dict = field(default_factory=dict)
    extra: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def scales(self) -> tuple[int, ...]:
        return tuple(sorted(self.windows))

    @property
    def patch_tokens(self) -> str:
        """The name of the patch-token variant in :attr:`patches`."""
        return str(self.meta.get("patch_tokens", "ln_post"))

    def __len__(self) -> int:
        return self.image.shape[0]

    # -- named tensors -------------------------------------------------------------------------------------
    def named(self) -> dict[str, torch.Tensor]:
        """Every tensor by a flat name: ``image``, ``windows.<k>``, ``patches.<variant>`` and the extras."""
        out = {"image": self.image, **{f"windows.{k}": v for k, v in sorted(self.windows.items())},
               f"patches.{self.patch_tokens}": self.patches}
        out.update(self.extra)
        return out

    @staticmethod
    def from_named(named: dict[str, torch.Tensor], grid: int, stride: int, scales: Iterable[int],
                   patch_tokens: str, extras: Iterable[str] = ()) -> Features:
        """The features of a request out of named tensors (:meth:`named`): the given window scales, the patch
        variant ``patch_tokens`` as :attr:`patches`, and the named ``extras``.

        Raises:
            KeyError: a requested tensor is not in ``named``.
        """
        missing = [n for n in ("image", *(f"windows.{k}" for k in scales), f"patches.{patch_tokens}", *extras)
                   if n not in named]
        if missing:
            raise KeyError(f"features lack {', '.join(missing)}")
        return Features(named["image"], {int(k): named[f"windows.{k}"] for k in sorted(scales)},
                        named[f"patches.{patch_tokens}"], int(grid), int(stride), {"patch_tokens": patch_tokens},
                        {n: named[n] for n in extras})

    def select(self, scales: Iterable[int] | None = None, patch_tokens: str | None = None) -> Features:
        """The same images with only the window ``scales`` given and, as :attr:`patches`, the variant
        ``patch_tokens`` (from :attr:`extra` when it is not the current one). Extras are kept."""
        named = self.named()
        scales = self.scales if scales is None else tuple(scales)
        variant = patch_tokens or self.patch_tokens
        extras = [n for n in self.extra if n != f"patches.{variant}"]
        if self.patch_tokens != variant:
            extras.append(f"patches.{self.patch_tokens}")
        return Features.from_named(named, self.grid, self.stride, scales, variant, extras)

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Features:
        return Features(fn(self.image), {k: fn(v) for k, v in self.windows.items()}, fn(self.patches), self.grid,
                        self.stride, dict(self.meta), {n: fn(v) for n, v in self.extra.items()})

    def to(self, *args, **kwargs) -> Features:
        return self._apply(lambda t: t.to(*args, **kwargs))

    def __getitem__(self, sel) -> Features:
        """Select images: an int, slice or index tensor along the batch dimension."""
        if isinstance(sel, int):
            sel = slice(sel, sel + 1)
        return self._apply(lambda t: t[sel])

    @staticmethod
    def cat(parts: list[Features]) -> Features:
        if not parts:
            raise ValueError("Features.cat needs at least one part")
        first = parts[0]
        return Features(
            torch.cat([p.image for p in parts]),
            {k: torch.cat([p.windows[k] for p in parts]) for k in first.windows},
            torch.cat([p.patches for p in parts]),
            first.grid,
            first.stride,
            dict(first.meta),
            {n: torch.cat([p.extra[n] for p in parts]) for n in first.extra},
        )
