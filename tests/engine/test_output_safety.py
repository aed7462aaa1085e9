"""Outputs never touch inputs; output sets complete or absent; full disk,
read-only folders, locks, temporaries (issue 9, output side; engine/outputs.py).

The table runs the real ``cryotiger`` console script on small inputs.  Each
row: the command (in its own folder), the expected exit code and a fragment of
the one-line message.  For every row the test also checks that the message is
one line, that no input changed (SHA-256) and that nothing was left behind
(no output, no temporary, no lock file).
"""
import fcntl
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from cryotiger_scipion.engine.formats.mrc import write_stack
from cryotiger_scipion.engine.formats.tlt import write_angles
from cryotiger_scipion.engine.outputs import lock_name
from conftest import cryotiger_cmd

N, NY, NX = 9, 32, 32


def run(*args, cwd=None, env=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run(cryotiger_cmd() + [str(a) for a in args], capture_output=True, text=True,
                          cwd=cwd, env=e)


def make_series(d, stem="TS", suffix=".mrc", n=N, seed=0):
    rng = np.random.default_rng(seed)
    stack = rng.normal(100, 5, size=(n, NY, NX)).astype(np.float32)
    write_stack(str(d / f"{stem}{suffix}"), stack, 5.0)
    write_angles(str(d / f"{stem}.tlt"), np.linspace(-12, 12, n))
    return stack


def snapshot(d):
    """{relative path: sha256 or 'dir' or 'link->target'} of everything under ``d``."""
    out = {}
    for root, dirs, files in os.walk(d):
        for name in dirs + files:
            p = os.path.join(root, name)
            rel = os.path.relpath(p, d)
            if os.path.islink(p):
                out[rel] = "link->" + os.readlink(p)
            elif os.path.isdir(p):
                out[rel] = "dir"
            elif not os.path.isfile(p):
                out[rel] = "special"            # a FIFO or device: never opened
            else:
                out[rel] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out


# ----------------------------------------------------------------------------
# the table
# ----------------------------------------------------------------------------
def _links(d):
    os.symlink("TS.mrc", d / "link.mrc")


def _link_tlt(d):
    os.symlink("TS.tlt", d / "out.tlt")        # OUT.tlt of --output out.mrc is the input angles


def _hard(d):
    os.link(d / "TS.mrc", d / "hard.mrc")


def _hard_tlt(d):
    os.link(d / "TS.tlt", d / "hard.tlt")


def _sub(d):
    (d / "sub").mkdir()


def _imod(d):
    make_series(d, suffix=".st")


def _acq(d):
    json.dump({"order": list(range(1, N + 1))}, open(d / "acq.json", "w"))


def _volume(d):
    write_stack(str(d / "vol.mrc"), np.ones((8, 16, 16), np.float32), 5.0)


def _folder_out(d):
    (d / "adir.mrc").mkdir()
    (d / "adir.mrc" / "keep.txt").write_text("user file\n")


def _model(d):
    (d / "model").mkdir()
    (d / "model" / "saved_model.pb").write_bytes(b"not a real model")


def _ctf(d):
    json.dump([{"angle": float(a), "defocus_u": 30000.0, "defocus_v": 30000.0, "astig_angle": 0.0}
               for a in np.linspace(-12, 12, N)], open(d / "ctf.json", "w"))


def _record(d):
    (d / "TS.json").write_text("[]\n")         # an interpolation record beside the stack (read)


def _tasks(d):
    (d / "tasks.txt").write_text("interpolate --input TS.mrc --angles TS.tlt --output o.mrc\n")


LIN = ["--method", "linear", "--quiet"]
def _fifo(d):
    os.mkfifo(d / "pipe")


def _nonempty_folder(d):
    (d / "m").mkdir()
    (d / "m" / "notes.txt").write_text("not a model\n")


ROWS = [
    # C01: IMOD layout, OUT.tlt beside --output TS.mrc is the input angle file
    ("C01", _imod, ["interpolate", "--input", "TS.st", "--angles", "TS.tlt", "--output", "TS.mrc"] + LIN,
     2, "TS.tlt (the .tlt written beside --output) is the --angles file"),
    # C02: ctf --output names the input stack
    ("C02", None, ["ctf", "--input", "TS.mrc", "--angles", "TS.tlt", "--output", "TS.mrc", "--quiet"],
     2, "(--output) is the --input file"),
    # C03: holdout --report names the input stack
    ("C03", None, ["holdout", "--input", "TS.mrc", "--angles", "TS.tlt", "--report", "TS.mrc"] + LIN,
     2, "(--report) is the --input file"),
    ("ctf-output-angles", None, ["ctf", "--input", "TS.mrc", "--angles", "TS.tlt", "--output", "TS.tlt",
                                 "--quiet"], 2, "(--output) is the --angles file"),
    ("holdout-report-angles", None, ["holdout", "--input", "TS.mrc", "--angles", "TS.tlt", "--report",
                                     "./TS.tlt"] + LIN, 2, "(--report) is the --angles file"),
    ("reconstruct-output-input", None, ["reconstruct", "--input", "TS.mrc", "--angles", "TS.tlt",
                                        "--output", "TS.mrc", "--thickness", "8", "--quiet"],
     2, "(--output) is the --input file"),
    ("reconstruct-output-ctf", _ctf, ["reconstruct", "--input", "TS.mrc", "--angles", "TS.tlt", "--ctf",
                                      "ctf.json", "--output", "ctf.json", "--thickness", "8", "--quiet"],
     2, "(--output) is the --ctf file"),
    ("simulate-output-volume", _volume, ["simulate", "--volume", "vol.mrc", "--output", "vol.mrc"],
     2, "(--output) is the --volume file"),
    # spellings and links
    ("dot-dot-spelling", _sub, ["interpolate", "--input", "TS.mrc", "--angles", "TS.tlt",
                                "--output", "sub/../TS.mrc"] + LIN, 2, "(--output) is the --input file"),
    ("symlink-input", _links, ["reconstruct", "--input", "link.mrc", "--angles", "TS.tlt",
                               "--output", "./TS.mrc", "--thickness", "8", "--quiet"],
     2, "is the --input file"),
    ("symlink-companion", _link_tlt, ["interpolate", "--input", "TS.mrc", "--angles", "TS.tlt",
                                      "--output", "out.mrc"] + LIN,
     2, "out.tlt (the .tlt written beside --output) is the --angles file"),
    ("hard-link", _hard, ["reconstruct", "--input", "TS.mrc", "--angles", "TS.tlt",
                          "--output", "hard.mrc", "--thickness", "8", "--quiet"], 2, "is the --input file"),
    ("hard-link-companion", _hard_tlt, ["interpolate", "--input", "TS.mrc", "--angles", "TS.tlt",
                                        "--output", "hard.mrc"] + LIN,
     2, "hard.tlt (the .tlt written beside --output) is the --angles file"),
    ("letter-case", None, ["reconstruct", "--input", "TS.mrc", "--angles", "TS.tlt",
                           "--output", "ts.MRC", "--thickness", "8", "--quiet"], 2, "is the --input file"),
    ("companion-json-acquisition", _acq, ["interpolate", "--input", "TS.mrc", "--angles", "TS.tlt",
                                          "--acquisition-json", "acq.json", "--output", "acq.mrc"] + LIN,
     2, "acq.json (the .json record written beside --output) is the --acquisition-json file"),
    ("output-is-own-companion", None, ["interpolate", "--input", "TS.mrc", "--angles", "TS.tlt",
                                       "--output", "x.json"] + LIN, 2, "would be written twice"),
    ("output-inside-model", _model, ["interpolate", "--input", "TS.mrc", "--angles", "TS.tlt",
                                     "--output", "model/out.mrc", "--method", "film", "--model", "model",
                                     "--quiet"], 2, "is inside the --model file"),
    ("train-output-is-input", None, ["train", "--input", "TS.mrc", "--angles", "TS.tlt",
                                     "--output", "TS.mrc", "--quiet"], 2, "is or contains the --input file"),
    ("record-beside-input", _record, ["reconstruct", "--input", "TS.mrc", "--angles", "TS.tlt",
                                      "--output", "TS.json", "--thickness", "8", "--quiet"],
     2, "(--output) is the record beside --input file"),
    ("parallel-report-is-tasks", _tasks, ["parallel", "tasks.txt", "--gpu-ids", "0", "--report",
                                          "tasks.txt", "--quiet"], 2, "(--report) is the TASKS file"),
    # output paths that cannot be written (item 3)
    ("output-is-folder", _folder_out, ["interpolate", "--input", "TS.mrc", "--angles", "TS.tlt",
                                       "--output", "adir.mrc"] + LIN, 2, "is a folder; give a file name"),
    ("missing-output-folder", None, ["reconstruct", "--input", "TS.mrc", "--angles", "TS.tlt",
                                     "--output", "nowhere/rec.mrc", "--thickness", "8", "--quiet"],
     2, "nowhere (of --output rec.mrc) does not exist"),
    ("missing-report-folder", None, ["holdout", "--input", "TS.mrc", "--angles", "TS.tlt", "--report",
                                     "nowhere/h.json"] + LIN, 2, "does not exist"),
    # an existing output that is not a regular file (as root, --output /dev/null would replace it)
    ("output-is-fifo", _fifo, ["ctf", "--input", "TS.mrc", "--angles", "TS.tlt", "--output", "pipe",
                               "--quiet"], 2, "exists and is not a regular file"),
    # refused before the database is built and the network trained, not at export
    ("train-into-nonempty-folder", _nonempty_folder,
     ["train", "--input", "TS.mrc", "--angles", "TS.tlt", "--output", "m", "--config", "small",
      "--steps", "1", "--patch-size", "32", "--batch-size", "1", "--val-fraction", "0", "--quiet"],
     2, "is not empty and holds no SavedModel"),
    ("output-trailing-slash", None, ["interpolate", "--input", "TS.mrc", "--angles", "TS.tlt",
                                     "--output", "out/"] + LIN, 2, "out/ (--output) names a folder, not a file"),
    ("model-init-output-file", None, ["model", "init", "--config", "small", "--output", "TS.tlt"],
     2, "exists and is not a folder"),
]


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_bad_output_table(tmp_path, row):
    _, setup, argv, code, fragment = row
    make_series(tmp_path)
    if setup:
        setup(tmp_path)
    before = snapshot(tmp_path)
    r = run(*argv, cwd=tmp_path)
    assert r.returncode == code, r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, r.stderr                    # one line, nothing before it
    assert lines[0].startswith(f"cryotiger {argv[0]}") and ": error: " in lines[0]
    assert fragment in lines[0]
    assert snapshot(tmp_path) == before                  # inputs unchanged, nothing left behind


# ----------------------------------------------------------------------------
# set commit and temporaries
# ----------------------------------------------------------------------------
def _set_hashes(d, stem):
    """SHA-256 of each member (of the MRC's data: its header holds a time stamp)."""
    import mrcfile
    out = {}
    for s in (".mrc", ".tlt", ".json"):
        p = d / f"{stem}{s}"
        if not p.exists():
            out[s] = None
        elif s == ".mrc":
            with mrcfile.open(p) as m:
                out[s] = hashlib.sha256(np.ascontiguousarray(m.data).tobytes()).hexdigest()
        else:
            out[s] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def test_output_set_committed_together_and_no_leftovers(tmp_path):
    make_series(tmp_path)
    r = run("interpolate", "--input", "TS.mrc", "--angles", "TS.tlt", "--output", "OUT.mrc", *LIN,
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(tmp_path)) == ["OUT.json", "OUT.mrc", "OUT.tlt", "TS.mrc", "TS.tlt"]
    # a failing run on the same output leaves the old set as it was, and no temporary
    before = snapshot(tmp_path)
    r = run("interpolate", "--input", "TS.mrc", "--angles", "TS.tlt", "--output", "OUT.mrc",
            "--exclude", "99", *LIN, cwd=tmp_path)
    assert r.returncode != 0
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("step", [0, 1, 2, 3])
def test_kill_during_commit_leaves_old_or_new_set(tmp_path, step):
    """kill -9 before each step of the commit (remove old OUT.mrc, rename OUT.tlt,
    OUT.json, OUT.mrc): the folder holds the old complete set, the new complete
    set, or no OUT.mrc (no set); the next run cleans what the killed one left."""
    make_series(tmp_path)
    old_args = ["interpolate", "--input", "TS.mrc", "--angles", "TS.tlt", "--output", "OUT.mrc", *LIN]
    new_args = old_args + ["--per-gap", "3"]
    ref = tmp_path / "ref"
    ref.mkdir()
    for name, args in (("old", old_args), ("new", new_args)):
        r = run(*[a if a != "OUT.mrc" else f"ref/{name}.mrc" for a in args], cwd=tmp_path)
        assert r.returncode == 0, r.stderr
    old, new = _set_hashes(ref, "old"), _set_hashes(ref, "new")
    assert old != new and all(old.values()) and all(new.values())
    r = run(*old_args, cwd=tmp_path)
    assert r.returncode == 0 and _set_hashes(tmp_path, "OUT") == old
    r = run(*new_args, cwd=tmp_path, env={"CRYOTIGER_TEST_KILL_AT_COMMIT": str(step)})
    assert r.returncode == -9                         # killed
    state = _set_hashes(tmp_path, "OUT")
    if state[".mrc"] is not None:
        assert state in (old, new), state
    if step == 0:
        assert state == old
    else:
        assert state[".mrc"] is None                  # old marker removed, new not yet there: no set
    leftovers = [n for n in os.listdir(tmp_path) if n.startswith(".OUT.")]
    assert leftovers                                  # the killed run's temporaries and lock
    r = run(*new_args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert _set_hashes(tmp_path, "OUT") == new
    assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == []


def test_kill_at_any_moment_leaves_old_or_new_set(tmp_path):
    """kill -9 at moments spread over a whole run (start-up, work, commit): the
    set is always the old one, the new one or absent; a final run completes it."""
    import time
    make_series(tmp_path)
    old_args = ["interpolate", "--input", "TS.mrc", "--angles", "TS.tlt", "--output", "OUT.mrc", *LIN]
    new_args = old_args + ["--per-gap", "3"]
    ref = tmp_path / "ref"
    ref.mkdir()
    for name, args in (("old", old_args), ("new", new_args)):
        assert run(*[a if a != "OUT.mrc" else f"ref/{name}.mrc" for a in args], cwd=tmp_path).returncode == 0
    old, new = _set_hashes(ref, "old"), _set_hashes(ref, "new")
    t = time.perf_counter()
    assert run(*old_args, cwd=tmp_path).returncode == 0
    duration = time.perf_counter() - t
    seen = set()
    for frac in np.linspace(0.3, 1.1, 9):
        p = subprocess.Popen(cryotiger_cmd() + new_args, cwd=tmp_path, stderr=subprocess.DEVNULL)
        time.sleep(duration * frac)
        p.kill()
        p.wait()
        state = _set_hashes(tmp_path, "OUT")
        if state[".mrc"] is None:
            seen.add("absent")
        else:
            assert state in (old, new), (frac, state)
            seen.add("old" if state == old else "new")
            if state == new:              # back to the old set for the next kill
                assert run(*old_args, cwd=tmp_path).returncode == 0
    assert run(*new_args, cwd=tmp_path).returncode == 0
    assert _set_hashes(tmp_path, "OUT") == new
    assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == []
    assert "old" in seen                   # some kills landed before the commit


def test_second_writer_is_refused(tmp_path):
    make_series(tmp_path)
    out = tmp_path / "OUT.mrc"
    fd = os.open(lock_name(str(out)), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)      # another run holds the output
        r = run("interpolate", "--input", "TS.mrc", "--angles", "TS.tlt", "--output", "OUT.mrc", *LIN,
                cwd=tmp_path)
        assert r.returncode == 1
        assert "is being written by another cryotiger run" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
        assert not out.exists()
        # the companion's lock is taken as well: a second command writing OUT.tlt
        r = run("reconstruct", "--input", "TS.mrc", "--angles", "TS.tlt", "--output", "OUT.mrc",
                "--thickness", "8", "--quiet", cwd=tmp_path)
        assert r.returncode == 1 and "another cryotiger run" in r.stderr
    finally:
        os.close(fd)
        os.remove(lock_name(str(out)))
    r = run("interpolate", "--input", "TS.mrc", "--angles", "TS.tlt", "--output", "OUT.mrc", *LIN,
            cwd=tmp_path)
    assert r.returncode == 0 and out.exists()


def test_holdout_plots_and_kept_stacks_belong_to_the_set(tmp_path):
    make_series(tmp_path)
    r = run("holdout", "--input", "TS.mrc", "--angles", "TS.tlt", "--report", "h.json", "--plot", "plots",
            "--keep", "keep", *LIN, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(tmp_path / "keep")) == ["01_linear.json", "01_linear.mrc", "01_linear.tlt"]
    assert "holdout_boxplots.png" in os.listdir(tmp_path / "plots")
    assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == []


# ----------------------------------------------------------------------------
# small file systems: full disk, read-only (needs mount: root)
# ----------------------------------------------------------------------------
@pytest.fixture
def small_fs(tmp_path):
    """A 2 MB tmpfs at tmp_path/fs (skipped where mount is not permitted)."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({r.stderr.strip() or 'not root'})")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(mnt, leave):
    """Fill the file system at ``mnt`` up to ``leave`` bytes free."""
    st = os.statvfs(mnt)
    free = st.f_bavail * st.f_frsize
    with open(mnt / "filler", "wb") as f:
        f.write(b"\0" * max(0, free - leave))


FULL_ROWS = [
    ("interpolate", ["interpolate", "--input", "../TS.mrc", "--angles", "../TS.tlt",
                     "--output", "OUT.mrc"] + LIN),
    ("reconstruct", ["reconstruct", "--input", "../TS.mrc", "--angles", "../TS.tlt",
                     "--output", "rec.mrc", "--thickness", "64", "--quiet"]),
    ("ctf", ["ctf", "--input", "../TS.mrc", "--angles", "../TS.tlt", "--output", "ctf.json",
             "--pixel-size", "5", "--quiet"]),
    ("holdout", ["holdout", "--input", "../TS.mrc", "--angles", "../TS.tlt", "--report", "h.json"] + LIN),
    ("simulate", ["simulate", "--phantom-shape", "16,64,64", "--output", "sim.mrc"]),
]


@pytest.mark.parametrize("row", FULL_ROWS, ids=[r[0] for r in FULL_ROWS])
def test_full_disk_one_line_nothing_left(tmp_path, small_fs, row):
    _, argv = row
    make_series(tmp_path)
    _fill(small_fs, leave=0 if argv[0] in ("ctf", "holdout") else 40_000)
    before = snapshot(small_fs)
    r = run(*argv, cwd=small_fs)
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "no space left on device at" in lines[0], r.stderr
    assert snapshot(small_fs) == before


@pytest.mark.parametrize("row", FULL_ROWS[:4], ids=[r[0] for r in FULL_ROWS[:4]])
def test_read_only_folder_one_line_nothing_left(tmp_path, small_fs, row):
    _, argv = row
    make_series(tmp_path)
    r = subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = run(*argv, cwd=small_fs)
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot write" in lines[0] and "read-only" in lines[0], r.stderr
    assert os.listdir(small_fs) == []


# ----------------------------------------------------------------------------
# TensorFlow missing or failing to import; its start-up lines
# ----------------------------------------------------------------------------
TF_ROWS = [
    ["interpolate", "--input", "TS.mrc", "--angles", "TS.tlt", "--output", "o.mrc", "--method", "film",
     "--model", "m", "--quiet"],
    ["holdout", "--input", "TS.mrc", "--angles", "TS.tlt", "--report", "h.json", "--method", "film",
     "--model", "m", "--quiet"],
    ["train", "--input", "TS.mrc", "--angles", "TS.tlt", "--output", "m2", "--quiet"],
    ["model", "init", "--config", "small", "--output", "m3"],
]


@pytest.mark.parametrize("argv", TF_ROWS, ids=[a[0] for a in TF_ROWS])
def test_tensorflow_import_failure_is_one_line(tmp_path, argv):
    make_series(tmp_path)
    fake = tmp_path / "fake"
    (fake / "tensorflow").mkdir(parents=True)
    (fake / "tensorflow" / "__init__.py").write_text(
        "raise ImportError('libtensorflow_framework.so.2: cannot open shared object file')\n")
    before = snapshot(tmp_path)
    r = run(*argv, cwd=tmp_path, env={"PYTHONPATH": str(fake)})
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "TensorFlow cannot be imported" in lines[0] and "libtensorflow_framework" in lines[0]
    assert sys.prefix in lines[0] and "installb cryotiger" in lines[0]
    assert snapshot(tmp_path) == before


def test_tensorflow_start_up_lines_are_quiet(tmp_path):
    """A FILM command that fails after TensorFlow started prints only its error line
    (oneDNN / cpu_feature_guard / absl lines only with --verbose)."""
    make_series(tmp_path)
    argv = ["interpolate", "--input", "TS.mrc", "--angles", "TS.tlt", "--output", "o.mrc",
            "--method", "film", "--model", "nomodel", "--quiet"]
    r = run(*argv, cwd=tmp_path, env={"TF_CPP_MIN_LOG_LEVEL": "0"})
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "nomodel" in r.stderr
    loud = run(*argv, "--verbose", cwd=tmp_path, env={"TF_CPP_MIN_LOG_LEVEL": "0"})
    assert loud.returncode == 2
    assert len(loud.stderr.strip().splitlines()) > 1     # the lines the quiet run kept away
    assert loud.stderr.strip().splitlines()[-1] == r.stderr.strip()


# ----------------------------------------------------------------------------
# caches: the training database is keyed on the content of every input (C19)
# ----------------------------------------------------------------------------
def _db_bytes(folder):
    return {n: open(os.path.join(folder, n), "rb").read() for n in sorted(os.listdir(folder))
            if n.endswith(".tfrecord")}


def test_training_database_keyed_on_content_not_path_and_mtime(tmp_path):
    """C19: ts.tlt rewritten in place (same path; here even the same mtime) with
    20 angles for the 21-image stack: the cached database is not reused, the
    rebuild refuses in one line.  A stack rewritten with the same size and mtime
    gives a new database too."""
    from cryotiger_scipion.engine import InputError
    from cryotiger_scipion.engine.train.data import DatabaseParams, SeriesSpec, build_database
    stack = make_series(tmp_path, n=21)
    spec = SeriesSpec(str(tmp_path / "TS.mrc"), str(tmp_path / "TS.tlt"))
    params = DatabaseParams(patch_size=16, shards=1, val_fraction=0)
    db = str(tmp_path / "db")
    build_database([spec], db, params, progress=False)
    first = _db_bytes(db)
    assert build_database([spec], db, params, progress=False)["request"] is not None  # reused
    assert _db_bytes(db) == first

    def rewrite(path, data):
        st = os.stat(path)
        with open(path, "r+b") as f:          # in place: same inode, same size
            f.write(data)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))

    # the stack's pixels change, its size and mtime do not
    raw = open(tmp_path / "TS.mrc", "rb").read()
    rewrite(str(tmp_path / "TS.mrc"), raw[:1024] + (stack[::-1] * 2).astype(np.float32).tobytes())
    build_database([spec], db, params, progress=False)
    assert _db_bytes(db) != first
    # the angle file loses a line
    tlt = tmp_path / "TS.tlt"
    lines = tlt.read_text().splitlines()
    st = os.stat(tlt)
    tlt.write_text("\n".join(lines[:20]) + "\n")
    os.utime(tlt, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(InputError, match="21 images in the stack but 20 angles"):
        build_database([spec], db, params, progress=False)


# ----------------------------------------------------------------------------
# memory: a process limit (ulimit -v, as a cgroup or SLURM job sets) below what
# FILM needs is said as "out of memory" before any work, not a model-folder error
# ----------------------------------------------------------------------------
def test_film_under_a_memory_limit_says_out_of_memory(tmp_path):
    make_series(tmp_path)
    r = run("model", "init", "--config", "small", "--output", "m", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    probe = subprocess.run(
        [sys.executable, "-c", "import tensorflow, cryotiger_scipion.engine.film.inference;"
                               "print(open('/proc/self/statm').read().split()[0])"],
        capture_output=True, text=True)
    size_kib = int(probe.stdout.split()[-1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    limit_kib = size_kib + 700 * 1024        # TensorFlow started, little room left
    before = snapshot(tmp_path)
    cmd = " ".join(cryotiger_cmd() + ["interpolate", "--input", "TS.mrc", "--angles", "TS.tlt",
                                      "--output", "o.mrc", "--method", "film", "--model", "m", "--quiet"])
    r = subprocess.run(["bash", "-c", f"ulimit -v {limit_kib}; exec {cmd}"], cwd=tmp_path,
                       capture_output=True, text=True)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1, r.stderr
    assert len(lines) == 1 and "out of memory" in lines[0] and "--tile-size" in lines[0], r.stderr
    assert "could not be loaded" not in lines[0]
    assert snapshot(tmp_path) == before


def test_an_unnamed_disk_error_names_the_output(tmp_path):
    """An OSError without a file name (e.g. ENOSPC from a JSON write) names the output
    being written, not the working folder."""
    import errno
    from cryotiger_scipion.engine.outputs import OutputSet, os_error_line
    out = str(tmp_path / "c.json")
    with pytest.raises(OSError) as info:
        with OutputSet("ctf", files=[(out, "--output")]):
            raise OSError(errno.ENOSPC, "No space left on device")
    line = os_error_line(info.value)
    assert f"no space left on device at {tmp_path}: cannot write {out}" in line
    assert not os.listdir(tmp_path)


def test_a_full_disk_reported_by_tensorflow_is_not_out_of_memory():
    """TensorFlow raises ResourceExhaustedError for a full disk too: not 'out of memory'."""
    from cryotiger_scipion.engine.cli import out_of_memory_cause

    class ResourceExhaustedError(Exception):      # the name is what the CLI recognises
        pass

    disk = ResourceExhaustedError("db/train-0.tfrecord; No space left on device")
    memory = ResourceExhaustedError("OOM when allocating tensor with shape[8,64,256,256]")
    assert out_of_memory_cause(disk) is None
    assert out_of_memory_cause(memory) is memory
    try:
        try:
            raise disk
        except ResourceExhaustedError as exc:
            raise RuntimeError("training failed") from exc
    except RuntimeError as chained:
        assert out_of_memory_cause(chained) is None
