"""CLI end to end: `cryotiger model init/info`, then `cryotiger interpolate --method film`."""
import json
import os
import subprocess

import mrcfile
import numpy as np
import pytest

pytest.importorskip("tensorflow")

from conftest import cryotiger_cmd  # noqa: E402
from cryotiger_scipion.engine.cli import main  # noqa: E402
from cryotiger_scipion.engine.formats.mrc import write_stack  # noqa: E402
from cryotiger_scipion.engine.formats.tlt import write_angles  # noqa: E402


def run(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(cryotiger_cmd() + [str(a) for a in args], capture_output=True, text=True, env=env)


def test_model_init_info_and_film_interpolation(tmp_path):
    model = tmp_path / "model"
    r = run("model", "init", "--config", "small", "--output", model, "--seed", 3)
    assert r.returncode == 0, r.stderr
    assert (model / "saved_model.pb").is_file() and (model / "variables").is_dir()
    r = run("model", "info", model)
    assert r.returncode == 0, r.stderr
    assert "parameters: 9355" in r.stdout.splitlines()
    assert "config: small" in r.stdout

    rng = np.random.default_rng(0)
    stack = (rng.normal(0, 1, (4, 90, 140)).cumsum(axis=2) * 3 + 500).astype(np.float32)
    write_stack(str(tmp_path / "TS.mrc"), stack, 2.5)
    write_angles(str(tmp_path / "TS.tlt"), [-6, -3, 0, 3])
    out = tmp_path / "OUT.mrc"
    r = run("interpolate", "--input", tmp_path / "TS.mrc", "--angles", tmp_path / "TS.tlt",
            "--output", out, "--method", "film", "--model", model, "--tile-size", 128,
            "--tile-overlap", 64, "--max-memory", 2, "--device", "cpu", "--quiet")
    assert r.returncode == 0, r.stderr
    with mrcfile.open(out) as m:
        data = np.array(m.data)
        assert data.shape == (7, 90, 140)
        assert float(m.voxel_size.x) == pytest.approx(2.5, abs=1e-3)
    np.testing.assert_array_equal(data[0], stack[0])
    np.testing.assert_array_equal(data[2], stack[1])
    assert np.all(np.isfinite(data))
    record = json.load(open(tmp_path / "OUT.json"))
    assert [e["synthetic"] for e in record] == [False, True] * 3 + [False]


def inproc(capsys, *args):
    """The same CLI, in this process (TensorFlow already loaded: faster)."""
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_published_model_init_prints_published_count(tmp_path, capsys):
    rc, _, err = inproc(capsys, "model", "init", "--config", "published", "--output", tmp_path / "pub")
    assert rc == 0, err
    rc, out, _ = inproc(capsys, "model", "info", tmp_path / "pub")
    assert "parameters: 34436667" in out.splitlines() and "config: published" in out


def test_missing_model_and_bad_per_gap_are_input_errors(tmp_path, capsys):
    write_stack(str(tmp_path / "TS.mrc"), np.ones((3, 64, 64), np.float32), 1.0)
    write_angles(str(tmp_path / "TS.tlt"), [-3, 0, 3])
    base = ["interpolate", "--input", tmp_path / "TS.mrc", "--angles", tmp_path / "TS.tlt",
            "--output", tmp_path / "O.mrc", "--method", "film", "--quiet"]
    rc, _, err = inproc(capsys, *base, "--model", tmp_path / "nope")
    assert rc == 2 and "does not exist" in err and "model init" in err
    rc, _, err = inproc(capsys, "model", "info", tmp_path)
    assert rc == 2 and "holds no saved_model.pb" in err
    assert inproc(capsys, "model", "init", "--config", "small", "--output", tmp_path / "m")[0] == 0
    rc, _, err = inproc(capsys, *base, "--model", tmp_path / "m", "--per-gap", "2")
    assert rc == 2 and "1, 3 or 7" in err
    assert not (tmp_path / "O.mrc").exists()
    rc, _, err = inproc(capsys, *base, "--model", tmp_path / "m", "--tile-size", "100")
    assert rc == 2 and "--tile-size 100" in err
