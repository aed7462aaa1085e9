"""The contrast transfer function (CTF) of a transmission electron microscope.

Conventions: defocus in Angstrom, positive = underfocus; ``astig_angle`` in
degrees, the direction of ``defocus_u`` measured from the x axis; voltage in
kV, Cs in mm, amplitude contrast as a fraction, pixel size in Angstrom.
Frequencies follow numpy's FFT layout (``np.fft.fftfreq``) unless said.

The model is the standard weak-phase CTF as written for CTFFIND (Mindell &
Grigorieff, J. Struct. Biol. 142, 2003; Rohou & Grigorieff, J. Struct. Biol.
192, 2015, "CTFFIND4")::

    CTF(g)  = -sin(chi(g))
    chi(g)  = pi lambda dz(a) |g|^2 - (pi / 2) Cs lambda^3 |g|^4 + phase_shift
              + arctan(A / sqrt(1 - A^2))
    dz(a)   = (U + V + (U - V) cos(2 (a - astig_angle))) / 2

with g the spatial frequency (1/Angstrom), a its direction, lambda the
electron wavelength, A the amplitude contrast fraction.
"""
from __future__ import annotations

import numpy as np


def electron_wavelength(voltage_kv: float) -> float:
    """Relativistic electron wavelength in Angstrom at ``voltage_kv`` (kV):
    lambda = h / sqrt(2 m0 e V (1 + e V / (2 m0 c^2))) = 12.2643 / sqrt(V (1 + 0.978466e-6 V))
    with V in volts (0.0197 A at 300 kV)."""
    v = voltage_kv * 1e3
    return 12.2643247 / np.sqrt(v * (1.0 + 0.978466e-6 * v))


def ctf_phase(freq_y: np.ndarray, freq_x: np.ndarray, defocus_u: float, defocus_v: float,
              astig_angle: float, voltage: float, cs: float, amp_contrast: float,
              phase_shift: float = 0.0) -> np.ndarray:
    """Phase chi (radians, amplitude contrast and phase plate shift included)
    at spatial frequencies (1/A); the formula is in the module doc.

    ``freq_y``, ``freq_x``: arrays of one shape, 1/Angstrom; ``defocus_u``,
    ``defocus_v``: Angstrom, underfocus positive; ``astig_angle``: degrees from
    the x axis; ``voltage``: kV; ``cs``: mm; ``amp_contrast``: fraction in
    [0, 1); ``phase_shift``: degrees (phase plate).  Returns an array of the
    frequencies' shape (float64 for float64 input)."""
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

    ``pixel_size`` in Angstrom; the other arguments as for ``ctf_phase``.
    Returns (y, x) float32 in ``np.fft.fft2`` layout (zero frequency at [0, 0]),
    or (y, x//2+1) with ``rfft`` (the half grid of ``np.fft.rfft2``)."""
    ny, nx = shape
    fy = np.fft.fftfreq(ny, d=pixel_size)[:, None]
    fx = (np.fft.rfftfreq(nx, d=pixel_size) if rfft else np.fft.fftfreq(nx, d=pixel_size))[None, :]
    fy, fx = np.broadcast_arrays(fy, fx)
    return -np.sin(ctf_phase(fy, fx, defocus_u, defocus_v, astig_angle, voltage, cs, amp_contrast,
                             phase_shift)).astype(np.float32)

