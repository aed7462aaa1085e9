"""Gctf wrapper: command line, log parsing (text written in Gctf's log
format), running a stand-in executable that behaves like Gctf (writes
<stem>_gctf.log per micrograph), failure reports, and the real binary when
CRYOTIGER_GCTF_BIN / GCTF_HOME / PATH provide one."""
import json
import os
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from cryotiger_scipion.engine import InputError
from cryotiger_scipion.engine import gctf
from cryotiger_scipion.engine.formats.mrc import write_stack
from cryotiger_scipion.engine.formats.tlt import write_angles

from conftest import cryotiger_cmd

LOG = textwrap.dedent("""\
    **************************************   LAST CYCLE    ************************************************************ *

       Defocus_U   Defocus_V       Angle         CCC
        23554.86    23897.17       43.23    0.094527  Final Values

    \x1b[1;32mResolution limit estimated by EPA: RES_LIMIT 3.731\x1b[0m
    Estimated Bfactor: B_FACTOR  62.10
    """)

LOG_PHASE = textwrap.dedent("""\
       Defocus_U   Defocus_V       Angle  Phase_shift         CCC
        31000.00    30000.00      -12.50        87.20    0.201000  Final Values
    Resolution limit estimated by EPA: RES_LIMIT 6.2
    """)


def test_command_builder():
    opts = gctf.GctfOptions(apix=2.5, kv=300, cs=2.7, ac=0.07, def_l=5000, def_h=80000, def_s=500,
                            astm=1000, res_l=50, res_h=10, boxsize=512, gid=1)
    cmd = gctf.build_command("/opt/Gctf", opts, ["tilt_001.mrc", "tilt_002.mrc"])
    assert cmd[0] == "/opt/Gctf" and cmd[-2:] == ["tilt_001.mrc", "tilt_002.mrc"]
    pairs = dict(zip(cmd[1:-2:2], cmd[2:-2:2]))
    assert float(pairs["--apix"]) == 2.5 and float(pairs["--kV"]) == 300
    assert float(pairs["--cs"]) == 2.7 and float(pairs["--ac"]) == 0.07
    assert float(pairs["--defL"]) == 5000 and float(pairs["--defH"]) == 80000
    assert float(pairs["--defS"]) == 500 and float(pairs["--astm"]) == 1000
    assert float(pairs["--resL"]) == 50 and float(pairs["--resH"]) == 10
    assert pairs["--boxsize"] == "512" and pairs["--gid"] == "1" and pairs["--do_EPA"] == "1"
    assert "--dstep" in pairs
    with pytest.raises(InputError):
        gctf.build_command("/opt/Gctf", opts, [])


def test_parse_log():
    r = gctf.parse_gctf_log(LOG)
    # U < V in the log: swapped so that U >= V, angle turned by 90 degrees
    assert r["defocus_u"] == pytest.approx(23897.17) and r["defocus_v"] == pytest.approx(23554.86)
    assert r["astig_angle"] == pytest.approx(133.23)
    assert r["ccc"] == pytest.approx(0.094527) and r["resolution"] == pytest.approx(3.731)
    r = gctf.parse_gctf_log(LOG_PHASE)
    assert r["phase_shift"] == pytest.approx(87.2) and r["ccc"] == pytest.approx(0.201)
    assert r["astig_angle"] == pytest.approx(167.5) and r["resolution"] == pytest.approx(6.2)
    with pytest.raises(gctf.GctfError, match="Final Values"):
        gctf.parse_gctf_log("Gctf started\nCUDA error: out of memory\n")


FAKE = """#!{python}
# Stand-in for Gctf: writes <stem>_gctf.log for each .mrc argument, with a
# defocus read from the file name order (30000 + 100 * k), like Gctf's log.
import os, sys
mode = {mode!r}
mics = [a for a in sys.argv[1:] if a.endswith('.mrc')]
print('GCTF fake, args:', ' '.join(sys.argv[1:]))
if mode == 'crash':
    print('ERROR: CUDA driver version is insufficient for CUDA runtime version')
    sys.exit(3)
for k, m in enumerate(mics):
    if mode == 'nofinal' and k == 1:
        text = 'Processing ' + m + '\\nsegmentation fault\\n'
    else:
        text = ('   Defocus_U   Defocus_V       Angle         CCC\\n'
                '   %.2f    %.2f       10.00    0.1500  Final Values\\n'
                'Resolution limit estimated by EPA: RES_LIMIT 7.5\\n') % (30100 + 100 * k, 29900 + 100 * k)
    open(os.path.splitext(m)[0] + '_gctf.log', 'w').write(text)
"""


def fake_gctf(tmp_path, mode="ok"):
    path = tmp_path / f"Gctf_{mode}"
    path.write_text(FAKE.format(python=sys.executable, mode=mode))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


@pytest.fixture
def stack(tmp_path):
    rng = np.random.default_rng(0)
    p = str(tmp_path / "ts.mrc")
    write_stack(p, rng.normal(size=(3, 128, 128)).astype(np.float32), 2.5)
    write_angles(str(tmp_path / "ts.tlt"), [-10, 0, 10])
    return p, str(tmp_path / "ts.tlt")


def test_run_stack_with_stand_in(tmp_path, stack):
    path, _ = stack
    opts = gctf.GctfOptions(apix=2.5, boxsize=512)
    res = gctf.run_gctf_stack(fake_gctf(tmp_path), path, [-10, 0, 10], opts, str(tmp_path / "w"),
                              progress=False)
    assert [r.angle for r in res] == [-10, 0, 10]
    assert [round(r.defocus) for r in res] == [30000, 30100, 30200]
    assert res[0].defocus_u - res[0].defocus_v == pytest.approx(200)
    assert res[0].resolution == 7.5 and res[0].fit_score == 0.15
    assert os.path.exists(tmp_path / "w" / "tilt_003.mrc")
    run_log = open(tmp_path / "w" / "gctf_run.log").read()
    assert "--boxsize 128" in run_log          # box clamped to the image size


def test_failures_are_reported(tmp_path, stack):
    path, _ = stack
    opts = gctf.GctfOptions(apix=2.5)
    with pytest.raises(gctf.GctfError) as exc:
        gctf.run_gctf_stack(fake_gctf(tmp_path, "crash"), path, [-10, 0, 10], opts,
                            str(tmp_path / "w1"), progress=False)
    msg = str(exc.value)
    assert "exit status 3" in msg and "--apix" in msg and "CUDA driver version" in msg
    with pytest.raises(gctf.GctfError) as exc:
        gctf.run_gctf_stack(fake_gctf(tmp_path, "nofinal"), path, [-10, 0, 10], opts,
                            str(tmp_path / "w2"), progress=False)
    msg = str(exc.value)
    assert "tilt_002_gctf.log" in msg and "segmentation fault" in msg and "Final Values" in msg


def test_find_gctf(tmp_path, monkeypatch):
    monkeypatch.setenv("CRYOTIGER_GCTF_BIN", str(tmp_path / "missing"))
    with pytest.raises(InputError, match="CRYOTIGER_GCTF_BIN"):
        gctf.find_gctf()
    exe = fake_gctf(tmp_path)
    monkeypatch.setenv("CRYOTIGER_GCTF_BIN", exe)
    assert gctf.find_gctf() == exe
    monkeypatch.delenv("CRYOTIGER_GCTF_BIN")
    home = tmp_path / "gctf_home"
    (home / "bin").mkdir(parents=True)
    os.symlink(exe, home / "bin" / "Gctf")
    monkeypatch.setenv("GCTF_HOME", str(home))
    assert gctf.find_gctf() == str(home / "bin" / "Gctf")


def test_cli_gctf_backend(tmp_path, stack):
    path, tlt = stack
    out = str(tmp_path / "CTF.json")
    r = subprocess.run(cryotiger_cmd() + ["ctf", "--input", path, "--angles", tlt, "--output", out,
                                          "--backend", "gctf", "--gctf", fake_gctf(tmp_path),
                                          "--gpu-id", "2"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    data = json.load(open(out))
    assert len(data) == 3 and all(e["backend"] == "gctf" for e in data)
    assert "--gid 2" in open(tmp_path / "CTF_gctf" / "gctf_run.log").read()
    r = subprocess.run(cryotiger_cmd() + ["ctf", "--input", path, "--angles", tlt, "--output",
                                          str(tmp_path / "bad.json"), "--backend", "gctf",
                                          "--gctf", fake_gctf(tmp_path, "crash")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "CUDA driver version" in r.stderr
    assert not os.path.exists(tmp_path / "bad.json")


def test_real_gctf(tmp_path):
    try:
        binary = gctf.find_gctf()
    except InputError as exc:
        pytest.skip(f"real Gctf not available ({exc})")
    from scipy import ndimage
    from cryotiger_scipion.engine.simulate import Acquisition, simulate_tilt_series
    rng = np.random.default_rng(1)
    vol = ndimage.gaussian_filter(rng.standard_normal((12, 512, 512)).astype(np.float32), 0.6)
    angles = [-10.0, 0.0, 10.0]
    ts = simulate_tilt_series(vol, angles, Acquisition(pixel_size=2.5, defocus=[30000.0] * 3,
                                                       dose_per_tilt=5.0))
    p = str(tmp_path / "ts.mrc")
    write_stack(p, ts, 2.5)
    res = gctf.run_gctf_stack(binary, p, angles, gctf.GctfOptions(apix=2.5, boxsize=256),
                              str(tmp_path / "w"), progress=False)
    assert np.median([abs(r.defocus - 30000) for r in res]) < 1000
