"""Several GPUs (issue 14 item 1): `cryotiger parallel` fans engine runs out
over a GPU list, one process per device slot, the device handed over through
CUDA_VISIBLE_DEVICES. Checked on a CPU-only machine with the linear method:
which process got which device (the child process prints what it was given),
that processes ran at the same time, several processes per GPU, and that a
failed series does not stop the others."""
import json
import os
import subprocess

import mrcfile
import numpy as np
import pytest

from conftest import cryotiger_cmd
from cryotiger_scipion.engine import InputError
from cryotiger_scipion.engine.devices import device_slots, overlapping, parse_gpu_ids
from cryotiger_scipion.engine.formats.mrc import write_stack
from cryotiger_scipion.engine.formats.tlt import write_angles

N_TILTS = 9


def run(*args):
    return subprocess.run(cryotiger_cmd() + list(args), capture_output=True, text=True)


@pytest.fixture
def tasks(tmp_path):
    """Four tilt series and a tasks file interpolating each (linear)."""
    rng = np.random.default_rng(0)
    lines = []
    for i in range(4):
        stack = rng.normal(100, 5, size=(N_TILTS, 64, 64)).astype(np.float32)
        write_stack(str(tmp_path / f"TS_{i}.mrc"), stack, 4.0)
        write_angles(str(tmp_path / f"TS_{i}.tlt"), np.linspace(-40, 40, N_TILTS))
        lines.append(f"interpolate --input {tmp_path}/TS_{i}.mrc --angles {tmp_path}/TS_{i}.tlt "
                     f"--output {tmp_path}/out/TS_{i}.mrc --method linear --per-gap 1")
    (tmp_path / "out").mkdir()
    path = tmp_path / "tasks.txt"
    path.write_text("# one line per tilt series\n" + "\n".join(lines) + "\n")
    return tmp_path, path


def child_device(log):
    """The CUDA_VISIBLE_DEVICES the task's own process printed."""
    for line in open(log):
        if "worker slot/GPU" in line:
            return line.rsplit("CUDA_VISIBLE_DEVICES=", 1)[1].strip()
    raise AssertionError(f"{log}: the engine process did not report its device")


def test_slots_round_robin():
    assert device_slots([0, 1]) == [0, 1]
    assert device_slots([2, 3], procs_per_gpu=2) == [2, 3, 2, 3]
    assert parse_gpu_ids("0 1") == [0, 1] and parse_gpu_ids("1,3") == [1, 3]
    for bad in ("", "a", "0,0", "-1"):
        with pytest.raises(InputError):
            parse_gpu_ids(bad)


def test_one_process_per_gpu_concurrently(tasks):
    d, path = tasks
    r = run("parallel", str(path), "--gpu-ids", "0,1", "--report", str(d / "report.json"))
    assert r.returncode == 0, r.stderr + r.stdout
    report = json.load(open(d / "report.json"))
    assert [t["name"] for t in report] == [f"TS_{i}" for i in range(4)]
    # the first two series start together, one on each GPU
    assert {report[0]["device"], report[1]["device"]} == {0, 1}
    for t in report:
        assert t["returncode"] == 0
        assert child_device(t["log"]) == str(t["device"])     # what the process itself saw
        with mrcfile.open(d / "out" / f"{t['name']}.mrc") as m:
            assert m.data.shape[0] == 2 * N_TILTS - 1
    assert {t["device"] for t in report} == {0, 1}
    assert sum(t["device"] == 0 for t in report) >= 1 and sum(t["device"] == 1 for t in report) >= 1
    # never two processes on one device at once (one slot per GPU) ...
    for dev in (0, 1):
        on = sorted((t["start"], t["end"]) for t in report if t["device"] == dev)
        assert all(a[1] <= b[0] for a, b in zip(on, on[1:]))
    # ... and the two devices worked at the same time
    from cryotiger_scipion.engine.devices import TaskResult
    assert overlapping([TaskResult(**t) for t in report]) == 2
    assert "at most 2 at once" in r.stdout


def test_several_processes_per_gpu(tasks):
    d, path = tasks
    r = run("parallel", str(path), "--gpu-ids", "1", "--procs-per-gpu", "2",
            "--report", str(d / "report.json"))
    assert r.returncode == 0, r.stderr
    report = json.load(open(d / "report.json"))
    assert {t["device"] for t in report} == {1}
    assert {t["slot"] for t in report} == {0, 1}
    assert all(child_device(t["log"]) == "1" for t in report)
    from cryotiger_scipion.engine.devices import TaskResult
    assert overlapping([TaskResult(**t) for t in report]) == 2


def test_failed_series_does_not_stop_the_others(tasks):
    d, path = tasks
    os.remove(d / "TS_2.mrc")
    r = run("parallel", str(path), "--gpu-ids", "0,1", "--report", str(d / "report.json"))
    assert r.returncode == 1
    assert "TS_2 failed" in r.stderr
    report = {t["name"]: t for t in json.load(open(d / "report.json"))}
    assert report["TS_2"]["returncode"] != 0
    for name in ("TS_0", "TS_1", "TS_3"):
        assert report[name]["returncode"] == 0
        assert (d / "out" / f"{name}.mrc").exists()


@pytest.mark.parametrize("line, message", [
    ("ls -l", "is not a cryotiger command"),
    ("interpolate --input a.mrc --output b.mrc --gpu-ids 1", "leave --gpu-ids out"),
])
def test_bad_task_lines(tmp_path, line, message):
    path = tmp_path / "tasks.txt"
    path.write_text(line + "\n")
    r = run("parallel", str(path), "--gpu-ids", "0")
    assert r.returncode == 2
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1
