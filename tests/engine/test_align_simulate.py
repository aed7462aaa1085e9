"""IMOD-convention transforms and the projection simulator's geometry."""
import numpy as np
import pytest

from cryotiger_scipion.engine.align import apply_xf, read_xf, write_xf
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
    # 90 degrees counter-clockwise (x' = -y, y' = x relative to the centre nx/2, ny/2).
    xf = np.array([[0, -1, 0], [1, 0, 0]], float)
    img = dot_image(16, 24, shape=(32, 32))          # relative (x, y) = (8, 0)
    out = apply_xf(img, xf)
    assert np.unravel_index(np.argmax(out), out.shape) == (24, 16)   # relative (0, 8)


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
