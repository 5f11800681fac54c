"""APLe's image adapter: fusion of the input with a Gaussian-filtered copy of itself (Cao et al., arXiv 2401.06827;
docs/APLE.md, "The filter: described method versus draft code").

    x~ = beta * x + (1 - beta) * y,    y = F^-1(G_sigma . F(x)),    G_sigma(u, v) = exp(-(u^2 + v^2) / (2 sigma^2))

``F`` is the 2-D FFT over ``(H, W)`` of each channel, ``(u, v)`` the ``fftfreq`` frequencies (cycles per pixel).
It is applied to the normalised image tensor ``[B, C, H, W]`` of the student, in training and test, and has no
parameters. Filters (``TRAINER.APLE.FILTER``):

- ``lowpass``: the described method. The complex spectrum is multiplied by ``G_sigma`` in unshifted ``fftfreq``
  order (DC at index 0, where the gain is 1) and ``.real`` is taken only after the inverse FFT. DC passes unchanged,
  Nyquist is multiplied by ``exp(-1 / (4 sigma^2))``.
- ``draft``: the draft code's filter, step for step (its ``fftshift``, ``gaussian_filter`` and
  ``filter_frequency``; docs/APLE.md). Per image ``[C, H, W]``:
  ``S = fft2(x)``; ``S = shift(S)``; ``S = S.real`` (the draft's ``.to(image)`` cast, which keeps the real part);
  ``S = S . G_sigma`` with ``G`` in unshifted ``fftfreq`` order; ``S = shift(S)`` again; ``y = ifft2(S).real``.
  ``shift`` is the draft's custom "fftshift": a roll by ``+(n // 2)`` along EVERY dimension of ``[C, H, W]``,
  channels included, and it is applied twice (there is no inverse shift). Consequences, each checked by hand in
  the tests. The cast keeps ``Re F(x)``, the spectrum of the point-symmetric part ``(x(h, w) + x(-h, -w)) / 2``
  (sine components are lost). Frequency ``(k, l)`` of that part gets the gain ``G`` at index
  ``(k + H // 2, l + W // 2)`` and lands at ``(k + 2 (H // 2), l + 2 (W // 2))``: for even sizes back on itself
  (DC gain ``exp(-1 / (4 sigma^2))``, about 0; Nyquist gain 1, a checkerboard stays a checkerboard), for odd sizes
  moved by ``(-1, -1)``. The channels are rolled by ``2 (C // 2)``: for RGB, output channel ``c`` comes from input
  channel ``c + 1`` (R, G, B -> G, B, R). On smooth images ``x~ ~= beta * x``.
- ``none``: the identity (the "without adapter" ablation).
"""
from __future__ import annotations

import torch

FILTERS = ("lowpass", "draft", "none")


def gaussian_gain(height: int, width: int, sigma: float, device=None) -> torch.Tensor:
    """``G_sigma [H, W]`` (fp32) on the unshifted ``fftfreq`` grid: ``G[0, 0]`` is DC, ``G[H//2, W//2]`` Nyquist."""
    u = torch.fft.fftfreq(height, device=device)
    v = torch.fft.fftfreq(width, device=device)
    radius2 = u[:, None] ** 2 + v[None, :] ** 2
    return torch.exp(-radius2 / (2.0 * sigma ** 2))


def gaussian_lowpass(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """``F^-1(G_sigma . F(x)).real`` over the last two dimensions of ``x [..., H, W]``, in fp32."""
    spectrum = torch.fft.fft2(x.float())
    gain = gaussian_gain(x.shape[-2], x.shape[-1], sigma, x.device)
    return torch.fft.ifft2(spectrum * gain).real


def draft_shift(spectrum: torch.Tensor) -> torch.Tensor:
    """The draft's "fftshift": a roll by ``+(n // 2)`` along each of the last three dimensions ``(C, H, W)``."""
    dims = (-3, -2, -1)
    return torch.roll(spectrum, shifts=[spectrum.shape[d] // 2 for d in dims], dims=dims)


def draft_filter(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """The draft code's filter (module doc), for images ``[C, H, W]`` or ``[B, C, H, W]``, in fp32:
    ``ifft2(shift(shift(fft2(x)).real . G_sigma)).real``.

    The shift acts on the last three dimensions only, so each image of a batch is filtered on its own.
    """
    if x.dim() not in (3, 4):
        raise ValueError(f"The draft image filter takes [C, H, W] or [B, C, H, W] images, not shape {tuple(x.shape)}.")
    spectrum = draft_shift(torch.fft.fft2(x.float())).real
    spectrum = draft_shift(spectrum * gaussian_gain(x.shape[-2], x.shape[-1], sigma, x.device))
    return torch.fft.ifft2(spectrum).real


class ImageAdapter:
    """``x -> beta * x + (1 - beta) * filter(x)`` for ``x [B, C, H, W]``; the result keeps ``x``'s dtype."""

    def __init__(self, kind: str = "lowpass", beta: float = 0.9, sigma: float = 0.05):
        if kind not in FILTERS:
            raise ValueError(f'TRAINER.APLE.FILTER is "{kind}"; choose one of {", ".join(FILTERS)}.')
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"TRAINER.APLE.BETA is {beta}; the fusion weight must be in [0, 1].")
        if kind != "none" and sigma <= 0:
            raise ValueError(f"TRAINER.APLE.SIGMA is {sigma}; the Gaussian width must be > 0 (cycles per pixel).")
        self.kind = kind
        self.beta = beta
        self.sigma = sigma

    def filtered(self, x: torch.Tensor) -> torch.Tensor:
        """The filtered term ``y`` (fp32)."""
        if self.kind == "lowpass":
            return gaussian_lowpass(x, self.sigma)
        return draft_filter(x, self.sigma)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "none":
            return x
        return (self.beta * x.float() + (1.0 - self.beta) * self.filtered(x)).to(x.dtype)

    def __repr__(self) -> str:
        return f"ImageAdapter(kind={self.kind!r}, beta={self.beta}, sigma={self.sigma})"
