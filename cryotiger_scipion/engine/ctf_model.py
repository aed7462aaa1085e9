"""The contrast transfer function (CTF) of a transmission electron microscope.

Conventions: defocus in Angstrom, positive = underfocus; ``astig_angle`` in
degrees, the direction of ``defocus_u`` measured from the x axis; voltage in
kV, Cs in mm, amplitude contrast as a fraction, pixel size in Angstrom.
Frequencies follow numpy's FFT layout (``np.fft.fftfreq``) unless said.
"""
from __future__ import annotations

import numpy as np


def electron_wavelength(voltage_kv: float) -> float:
    """Relativistic electron wavelength in Angstrom."""
    v = voltage_kv * 1e3
    return 12.2643247 / np.sqrt(v * (1.0 + 0.978466e-6 * v))


def ctf_phase(freq_y: np.ndarray, freq_x: np.ndarray, defocus_u: float, defocus_v: float,
              astig_angle: float, voltage: float, cs: float, amp_contrast: float,
              phase_shift: float = 0.0) -> np.ndarray:
    """Phase chi (radians, amplitude contrast and phase plate shift included)
    at spatial frequencies (1/A)."""
    lam = electron_wavelength(voltage)
    cs_a = cs * 1e7
    s2 = freq_x ** 2 + freq_y ** 2
    ang = np.arctan2(freq_y, freq_x)
    dz = 0.5 * (defocus_u + defocus_v + (defocus_u - defocus_v) * np.cos(2 * (ang - np.deg2rad(astig_angle))))
    chi = np.pi * lam * dz * s2 - 0.5 * np.pi * cs_a * lam ** 3 * s2 ** 2
    w = np.arctan(amp_contrast / np.sqrt(max(1e-12, 1 - amp_contrast ** 2)))
    return chi + w + np.deg2rad(phase_shift)


def ctf_2d(shape: tuple, pixel_size: float, defocus_u: float, defocus_v: float, astig_angle: float,
           voltage: float, cs: float, amp_contrast: float, phase_shift: float = 0.0,
           rfft: bool = False) -> np.ndarray:
    """2D CTF (-sin chi) on the FFT grid of an image of ``shape`` (y, x).

    ``rfft``: the half grid of ``np.fft.rfft2``."""
    ny, nx = shape
    fy = np.fft.fftfreq(ny, d=pixel_size)[:, None]
    fx = (np.fft.rfftfreq(nx, d=pixel_size) if rfft else np.fft.fftfreq(nx, d=pixel_size))[None, :]
    fy, fx = np.broadcast_arrays(fy, fx)
    return -np.sin(ctf_phase(fy, fx, defocus_u, defocus_v, astig_angle, voltage, cs, amp_contrast,
                             phase_shift)).astype(np.float32)

