"""The CTF phase pinned against values computed by hand, independently of
engine.ctf_model (the simulator, the estimator and the 3D correction all use
that one phase function, so an error there cancels out in every other test).

Hand computation (CODATA 2018 constants):
  lambda = h / sqrt(2 m e V (1 + e V / (2 m c^2)))
         = 0.0196875 A at 300 kV, 0.0250793 A at 200 kV, 0.0370144 A at 100 kV
  chi(k) = pi lambda df k^2 - (pi / 2) Cs lambda^3 k^4  (Cs in A = mm x 1e7)
  at 300 kV, Cs 2.7 mm, df 20000 A:
    k = 0.1 / A: 12.370014 - 0.032363 = 12.337651 rad
    k = 0.3 / A: 111.330127 - 2.621438 = 108.708689 rad
  amplitude contrast 0.07 adds atan(0.07 / sqrt(1 - 0.07^2)) = 0.0700573 rad.
"""
import math

import numpy as np
import pytest

from cryotiger_scipion.engine.ctf_model import ctf_2d, ctf_phase, electron_wavelength

W007 = 0.0700573


@pytest.mark.parametrize("kv, lam", [(300, 0.0196875), (200, 0.0250793), (100, 0.0370144)])
def test_relativistic_wavelength(kv, lam):
    assert electron_wavelength(kv) == pytest.approx(lam, abs=2e-7)


@pytest.mark.parametrize("k, chi", [(0.1, 12.337651), (0.3, 108.708689)])
def test_phase_at_known_defocus_and_cs_in_mm(k, chi):
    got = ctf_phase(np.array([0.0]), np.array([k]), 20000.0, 20000.0, 0.0, 300.0, 2.7, 0.0)[0]
    assert got == pytest.approx(chi, rel=1e-5)   # 6 ppm: wavelength constants
    # Cs in mm: a 10x unit error changes chi at 0.3/A by 23.6 rad.
    assert ctf_phase(np.array([0.0]), np.array([0.3]), 20000.0, 20000.0, 0.0, 300.0, 0.27,
                     0.0)[0] == pytest.approx(111.330127 - 0.2621438, rel=1e-5)


def test_amplitude_contrast_phase():
    got = ctf_phase(np.array([0.0]), np.array([0.1]), 20000.0, 20000.0, 0.0, 300.0, 2.7, 0.07)[0]
    assert got == pytest.approx(12.337651 + W007, abs=2e-4)
    # The radial CTF is -sin(chi) (negative at low frequency for underfocus + amplitude contrast).
    # (grid (1, 20) at 0.5 A/pixel: column 1 is 0.1/A along x)
    assert ctf_2d((1, 20), 0.5, 20000.0, 20000.0, 0.0, 300.0, 2.7, 0.07)[0, 1] == pytest.approx(
        -math.sin(12.337651 + W007), abs=3e-4)


def test_astigmatism_direction_u_along_astig_angle():
    """defocus_u acts along astig_angle (degrees from x towards y), defocus_v
    at 90 degrees from it, the mean at 45 degrees.  A U/V swap or an angle
    measured from y fails."""
    lam = 0.0196875
    k, du, dv, ang = 0.1, 25000.0, 20000.0, 30.0
    cs_term = 0.5 * math.pi * 2.7e7 * lam ** 3 * k ** 4
    for direction, dz in ((30.0, du), (120.0, dv), (75.0, 0.5 * (du + dv)), (-15.0, 0.5 * (du + dv))):
        t = math.radians(direction)
        got = ctf_phase(np.array([k * math.sin(t)]), np.array([k * math.cos(t)]), du, dv, ang,
                        300.0, 2.7, 0.0)[0]
        assert got == pytest.approx(math.pi * lam * dz * k ** 2 - cs_term, abs=2e-4), direction


def test_ctf_2d_grid_layout():
    """ctf_2d (y, x) follows np.fft.fftfreq: pixel (iy, ix) holds -sin(chi) at
    (fy, fx) = (fftfreq[iy], fftfreq[ix]) / pixel size; astigmatism along x
    shows along the columns."""
    px, n = 2.0, 64
    c = ctf_2d((n, n), px, 25000.0, 20000.0, 0.0, 300.0, 2.7, 0.07)
    lam = 0.0196875
    ix = 10                                   # fx = 10 / (64 * 2) = 0.078125 / A, fy = 0
    k = ix / (n * px)
    chi_u = math.pi * lam * 25000.0 * k ** 2 - 0.5 * math.pi * 2.7e7 * lam ** 3 * k ** 4 + W007
    chi_v = math.pi * lam * 20000.0 * k ** 2 - 0.5 * math.pi * 2.7e7 * lam ** 3 * k ** 4 + W007
    assert c[0, ix] == pytest.approx(-math.sin(chi_u), abs=3e-4)
    assert c[ix, 0] == pytest.approx(-math.sin(chi_v), abs=3e-4)


def test_estimator_phase_equals_the_pinned_one():
    """The fitter's own copy of the phase (engine.ctf._Model.chi) equals the
    hand values too (an error there would bias every fit)."""
    from cryotiger_scipion.engine.ctf import Microscope, _Model, _Segment
    seg = _Segment.__new__(_Segment)
    t = math.radians(120.0)
    k = 0.1
    seg.fy, seg.fx, seg.shift = np.array([k * math.sin(t)]), np.array([k * math.cos(t)]), 0.0
    seg.s2 = np.array([k * k])
    seg.s4 = seg.s2 ** 2
    seg.ang = np.arctan2(seg.fy, seg.fx)
    m = _Model(Microscope(pixel_size=2.0, voltage=300.0, cs=2.7, amp_contrast=0.07), [])
    # U = 25000 along 30 degrees, V = 20000: at 120 degrees the phase of V.
    lam = 0.0196875
    want = math.pi * lam * 20000.0 * k ** 2 - 0.5 * math.pi * 2.7e7 * lam ** 3 * k ** 4 + W007
    assert m.chi(seg, 22500.0, 5000.0, math.radians(30.0))[0] == pytest.approx(want, abs=2e-4)
