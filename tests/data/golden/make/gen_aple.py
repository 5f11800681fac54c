"""Make aple.pt: APLe's image adapter as the draft code defines it (there is no official APLe implementation).

Source: the unattributed public APLe trainer file (the authors' probable draft; docs/APLE.md, "The filter:
described method versus draft code"). Its adapter, per image [C, H, W] (functions `fftshift`, `gaussian_filter` and
`filter_frequency` there):

    F = fft2(image)                    2-D FFT over (H, W) of each channel
    F = fftshift(F)                    the draft's own fftshift: np.roll by n // 2 along EVERY axis (C, H, W)
    F = F.to(image)                    cast to the image's real dtype: the real part is kept
    F = F * gaussian_filter(H, W, s)   exp(-(u^2 + v^2) / (2 s^2)), u, v = fftfreq(H), fftfreq(W), unshifted
    F = fftshift(F)                    the same roll again (no inverse shift)
    y = ifft2(F), real part
    x~ = beta * image + (1 - beta) * y

This script is an independent, literal NumPy transcription of those steps in float64 (it does not import the
project). It writes the inputs and the expected `filtered` (y) and `adapted` (x~) tensors, float32, for even and
odd image sizes and two widths sigma. Run from this folder: python gen_aple.py
"""
import os

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(os.path.dirname(HERE), "aple.pt")


def fftshift(a):
    """The draft's fftshift: roll by n // 2 along every axis of the [C, H, W] spectrum."""
    for axis, n in enumerate(a.shape):
        a = np.roll(a, n // 2, axis=axis)
    return a


def gaussian_filter(height, width, sigma):
    u = np.fft.fftfreq(height)[:, None]
    v = np.fft.fftfreq(width)[None, :]
    return np.exp(-(u ** 2 + v ** 2) / (2 * sigma ** 2))


def filter_frequency(image, sigma):
    """One image [C, H, W] (float64) -> the filtered term y [C, H, W]."""
    spectrum = np.fft.fft2(image, axes=(-2, -1))
    spectrum = fftshift(spectrum)
    spectrum = spectrum.real.astype(image.dtype)
    spectrum = spectrum * gaussian_filter(image.shape[-2], image.shape[-1], sigma)
    spectrum = fftshift(spectrum)
    return np.fft.ifft2(spectrum, axes=(-2, -1)).real


def make_case(name, shape, sigma, beta, seed):
    rng = np.random.default_rng(seed)
    images = rng.standard_normal(shape).astype(np.float32)  # normalised-image-like inputs [B, C, H, W]
    x = images.astype(np.float64)
    filtered = np.stack([filter_frequency(img, sigma) for img in x])
    adapted = beta * x + (1 - beta) * filtered
    return {"name": name, "sigma": sigma, "beta": beta, "images": torch.from_numpy(images),
            "expected": {"filtered": torch.from_numpy(filtered.astype(np.float32)),
                         "adapted": torch.from_numpy(adapted.astype(np.float32))}}


def main():
    cases = [
        make_case("even_32_sigma0.05", (2, 3, 32, 32), 0.05, 0.9, seed=0),  # the draft's hard-coded sigma, beta
        make_case("even_32_sigma0.35", (2, 3, 32, 32), 0.35, 0.9, seed=1),  # the toy config's sigma
        make_case("odd_15x9_sigma0.3", (2, 3, 15, 9), 0.3, 0.9, seed=2),
    ]
    torch.save({"case": "aple", "method": "APLe", "official_repo": None,
                "official_file": "unattributed draft APLe trainer: fftshift, gaussian_filter, filter_frequency",
                "generator": "make/gen_aple.py (NumPy, float64, literal transcription of the draft's steps)",
                "config": {"TRAINER.APLE.FILTER": "draft"}, "cases": cases}, OUT)
    print(f"wrote {OUT}: " + ", ".join(c["name"] for c in cases))


if __name__ == "__main__":
    main()
