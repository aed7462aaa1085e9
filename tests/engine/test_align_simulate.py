"""IMOD-convention transforms and the projection simulator's geometry."""
import numpy as np
import pytest

from cryotiger_scipion.engine.align import apply_xf
from cryotiger_scipion.engine.formats.xf import read_xf, write_xf
from cryotiger_scipion.engine.simulate import (Acquisition, phantom_volume, project,
                                               simulate_tilt_series)


def dot_image(y, x, shape=(32, 40)):
    img = np.zeros(shape, np.float32)
    img[y, x] = 1.0
    return img


def test_shift_moves_content_by_dx_dy():
    xf = np.array([[1, 0, 3], [0, 1, -2]], float)   # DX = 3, DY = -2
    out = apply_xf(dot_image(10, 12), xf)
    assert np.unravel_index(np.argmax(out), out.shape) == (8, 15)


def test_rotation_about_image_centre():
    # 90 degrees counter-clockwise: X' = -Y, Y' = X about IMOD's centre, pixel
    # index (n - 1) / 2 = 15.5 of 32 px.  A point at (X, Y) = (8.5, 0.5)
    # (row 16, column 24) goes to (-0.5, 8.5): row 24, column 15.
    xf = np.array([[0, -1, 0], [1, 0, 0]], float)
    img = dot_image(16, 24, shape=(32, 32))
    out = apply_xf(img, xf)
    assert np.unravel_index(np.argmax(out), out.shape) == (24, 15)
    assert out.max() == pytest.approx(1.0, abs=1e-6)      # lands exactly on a pixel


# IMOD's convention written out from its documentation (newstack/xfmodel man
# pages), independently of engine.align: X' = A X + D maps a raw point to the
# aligned image, X along columns and Y along rows, both from the centre at
# pixel index (n - 1) / 2.
def _gaussians(rows, cols, centres, sigma):
    out = np.zeros(np.broadcast(rows, cols).shape)
    for r, c in centres:
        out += np.exp(-((rows - r) ** 2 + (cols - c) ** 2) / (2 * sigma ** 2))
    return out


def _imod_forward(a, d, row, col, raw_shape, out_shape):
    """Aligned (row, col) of raw pixel (row, col), IMOD's documented mapping."""
    ny, nx = raw_shape
    nyo, nxo = out_shape
    x, y = col - (nx - 1) / 2.0, row - (ny - 1) / 2.0
    xp = a[0][0] * x + a[0][1] * y + d[0]
    yp = a[1][0] * x + a[1][1] * y + d[1]
    return yp + (nyo - 1) / 2.0, xp + (nxo - 1) / 2.0


def _imod_expected(a, d, centres, sigma, raw_shape, out_shape):
    """The aligned image of Gaussian blobs evaluated exactly (no resampling):
    aligned pixel (i, j) shows the raw point A^-1 ((j, i) - centre' - D)."""
    ny, nx = raw_shape
    nyo, nxo = out_shape
    i, j = np.mgrid[0:nyo, 0:nxo].astype(float)
    ainv = np.linalg.inv(np.asarray(a, float))
    xp, yp = j - (nxo - 1) / 2.0 - d[0], i - (nyo - 1) / 2.0 - d[1]
    x = ainv[0, 0] * xp + ainv[0, 1] * yp
    y = ainv[1, 0] * xp + ainv[1, 1] * yp
    rows, cols = y + (ny - 1) / 2.0, x + (nx - 1) / 2.0
    inside = (rows >= 0) & (rows <= ny - 1) & (cols >= 0) & (cols <= nx - 1)
    return _gaussians(rows, cols, centres, sigma), inside


def _nonorthogonal_matrix():
    """Magnification 1.02, stretch 1.06 along 30 degrees, rotation 12 degrees."""
    def rot(t):
        t = np.deg2rad(t)
        return np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    stretch = rot(30) @ np.diag([1.06, 1.0]) @ rot(-30)
    return 1.02 * rot(12) @ stretch


def test_nonorthogonal_xf_follows_imod_convention():
    """C24: magnification + stretch + rotation + shift (A^T != A^-1).  The
    aligned image equals the exact evaluation of IMOD's convention; reading
    the matrix as A^T or A^-1, or the centre at n/2, fails."""
    a = _nonorthogonal_matrix()
    np.testing.assert_allclose(a, [[1.0370978, -0.1893297], [0.2475344, 1.0181859]], atol=1e-6)
    d = (3.0, -2.0)
    shape = (60, 72)                                 # non-square: rows and columns not swapped
    centres = [(18.0, 20.0), (40.0, 25.0), (22.0, 50.0), (38.0, 47.0)]
    sigma = 3.0
    r, c = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    raw = _gaussians(r, c, centres, sigma).astype(np.float32)
    xf = np.array([[a[0, 0], a[0, 1], d[0]], [a[1, 0], a[1, 1], d[1]]])
    out = apply_xf(raw, xf)
    expected, inside = _imod_expected(a, d, centres, sigma, shape, shape)
    err = np.abs(out - expected)[inside].max()
    assert err < 0.033, err            # bilinear error 0.026; the centre at n/2 gives 0.042
    # Each blob's centroid (one blob per image) sits where the forward mapping
    # X' = A X + D puts it (an affine map moves a centroid exactly).
    gr, gc = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    for rc in centres:
        one = apply_xf(_gaussians(r, c, [rc], sigma).astype(np.float32), xf).astype(float)
        er, ec = _imod_forward(a, d, rc[0], rc[1], shape, shape)
        assert (one * gr).sum() / one.sum() == pytest.approx(er, abs=0.02)
        assert (one * gc).sum() / one.sum() == pytest.approx(ec, abs=0.02)
    # The wrong readings of the same line differ by most of a blob's peak.
    for wrong in (a.T, np.linalg.inv(a)):
        exp_wrong, _ = _imod_expected(wrong, d, centres, sigma, shape, shape)
        assert np.abs(exp_wrong - expected)[inside].max() > 0.5


def test_xf_file_convention_a11_a12_a21_a22_dx_dy(tmp_path):
    """An .xf line is A11 A12 A21 A22 DX DY (read_xf -> [[A11, A12, DX], [A21, A22, DY]])."""
    (tmp_path / "t.xf").write_text("1.0370978 -0.1893297 0.2475344 1.0181859 3.000 -2.000\n")
    m = read_xf(str(tmp_path / "t.xf"))[0]
    np.testing.assert_allclose(m, [[1.0370978, -0.1893297, 3.0], [0.2475344, 1.0181859, -2.0]])


def test_ninety_degree_xf_turns_the_frame_of_non_square_images():
    """C25: a tilt axis along x (.xf '0 -1 1 0 0 0') on 40 rows x 20 columns:
    the aligned frame is 20 rows x 40 columns and nothing is cut."""
    from cryotiger_scipion.engine.align import Aligner, aligned_shape, cut_fraction
    a = np.array([[0.0, -1.0], [1.0, 0.0]])
    xf = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0]])
    shape = (40, 20)
    centres = [(8.0, 5.0), (30.0, 14.0), (19.5, 9.5)]
    r, c = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    raw = _gaussians(r, c, centres, 2.0).astype(np.float32)
    assert aligned_shape(xf[None], shape) == (20, 40)
    aligner = Aligner(xf[None], shape)
    out = aligner(raw, 0)
    assert out.shape == (20, 40)
    expected, inside = _imod_expected(a, (0, 0), centres, 2.0, shape, (20, 40))
    assert inside.all()
    np.testing.assert_allclose(out, expected, atol=1e-5)   # 90 degrees: exact pixel moves
    assert cut_fraction(xf, shape, (20, 40)) == 0.0
    assert cut_fraction(xf, shape, shape) == pytest.approx(0.5, abs=0.05)
    # Small rotations keep the raw frame.
    small = np.array([[[np.cos(0.1), -np.sin(0.1), 2.0], [np.sin(0.1), np.cos(0.1), 0.0]]])
    assert aligned_shape(small, shape) == shape


def test_cut_signal_is_warned(capsys):
    from cryotiger_scipion.engine.align import Aligner
    shift = np.array([[[1.0, 0.0, 12.0], [0.0, 1.0, 0.0]], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    Aligner(shift, (40, 40), label="ts")
    err = capsys.readouterr().err
    assert "warning" in err and "view 1: 30% of its area cut" in err
    Aligner(shift * [[[1, 1, 0.1]]], (40, 40), label="ts")    # 1.2 px: 3 %, no warning
    assert capsys.readouterr().err == ""


def test_xf_file_round_trip(tmp_path):
    xf = np.array([[[1, 0.1, 2.5], [-0.1, 1, -1.25]], [[1, 0, 0], [0, 1, 0]]])
    write_xf(str(tmp_path / "a.xf"), xf)
    np.testing.assert_allclose(read_xf(str(tmp_path / "a.xf")), xf, atol=1e-6)


def test_projection_geometry_u_equals_x_cos_plus_z_sin():
    vol = np.zeros((21, 8, 41), np.float32)
    # a point 6 voxels above the centre (z) and 4 right of it (x)
    vol[10 + 6, 4, 20 + 4] = 1.0
    for angle in (0.0, 30.0, -45.0):
        p = project(vol, angle)
        u = 4 * np.cos(np.deg2rad(angle)) + 6 * np.sin(np.deg2rad(angle))
        centroid = (p[4] * np.arange(41)).sum() / p[4].sum() - 20
        assert centroid == pytest.approx(u, abs=0.15)
        assert p.sum() == pytest.approx(1.0, rel=0.15)  # bilinear sampling along the ray


def test_zero_tilt_projection_is_the_sum_over_z():
    vol = phantom_volume((12, 16, 16), n_blobs=5, seed=3)
    np.testing.assert_allclose(project(vol, 0.0), vol.sum(axis=0), rtol=1e-4, atol=1e-4)


def test_noise_and_ctf_change_images_reproducibly():
    vol = phantom_volume((12, 32, 32), n_blobs=8, seed=1)
    clean = simulate_tilt_series(vol, [0, 10])
    noisy = simulate_tilt_series(vol, [0, 10], Acquisition(pixel_size=5, dose_per_tilt=3, seed=7))
    again = simulate_tilt_series(vol, [0, 10], Acquisition(pixel_size=5, dose_per_tilt=3, seed=7))
    np.testing.assert_array_equal(noisy, again)
    assert np.std(noisy - clean) > 0.01
    ctf = simulate_tilt_series(vol, [0, 10], Acquisition(pixel_size=5, defocus=[30000, 30000]))
    assert not np.allclose(ctf, clean, atol=1e-3)
