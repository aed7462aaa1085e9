"""Table-driven bad-input test across every ``cryotiger`` command (issue 9).

Each row of ``ROWS`` names the command line, the inputs (built by a small
generator below, in a fresh folder), the expected exit code and a fragment of
the one-line message.  For every row the test also checks that the message is
ONE line on stderr, that the inputs' sha256 are unchanged and that nothing
else (no output, no temporary) is left in the folder.

Rows are grouped by kind; the ids follow ../shared/cases/README.md (C05 ...)
with a suffix for the variants of a kind.  To add rows: write a builder
(``def build_x(d)`` that writes the inputs into folder ``d``) if none fits,
then append ``Row(id, command, builder, args, exit_code, fragment)``.
``{c}`` in args is the command's usual output option (see OUTPUTS).

The commands run in-process (``cli.main``) for speed; the console script is
exercised by test_cli_interpolate.py.  Value tests for the good cases of the
same kinds (8-bit data, unknown pixel size, reversed ranges, excluded NaN
views, featureless CTF tilts, angle-file variants) follow the table.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import warnings
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import mrcfile
import numpy as np
import pytest

from cryotiger_scipion.engine import cli

N = 9                                       # views of the plain test series
ANGLES = np.linspace(-24.0, 24.0, N)
PX = 5.0


# ---------------------------------------------------------------------------- builders
def series(n=N, ny=32, nx=32, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.normal(0.0, 1.0, (ny + 8, nx + 8))
    from scipy import ndimage
    base = ndimage.gaussian_filter(base, 1.5)
    out = [np.roll(base, i, axis=1)[4:4 + ny, 4:4 + nx] for i in range(n)]
    return (1.0 + 0.1 * np.asarray(out) / np.std(out)).astype(np.float32)


def write_mrc(path, data, px=PX):
    with warnings.catch_warnings(), mrcfile.new(str(path), overwrite=True) as m:
        warnings.simplefilter("ignore")
        m.set_data(np.ascontiguousarray(data))
        if data.ndim == 3:
            m.set_image_stack()
        m.voxel_size = px


def write_tlt(path, angles=ANGLES):
    with open(path, "w") as f:
        f.write("".join(f"{a:.2f}\n" for a in angles))


def patch(path, offset, fmt, value):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(struct.pack("<" + fmt, value))


def plain(d, data=None, px=PX):
    write_mrc(d / "ts.mrc", series() if data is None else data, px)
    write_tlt(d / "ts.tlt")


def build_header(offset, fmt, value):
    def build(d):
        plain(d)
        patch(d / "ts.mrc", offset, fmt, value)
    return build


def build_complex(d):
    s = series()
    write_mrc(d / "ts.mrc", (s + 1j * s[::-1]).astype(np.complex64))
    write_tlt(d / "ts.tlt")


def build_px(value):
    def build(d):
        plain(d)
        with warnings.catch_warnings(), mrcfile.open(str(d / "ts.mrc"), "r+", permissive=True) as m:
            warnings.simplefilter("ignore")
            m.header.cella.x = value * m.header.mx
            m.header.cella.y = value * m.header.my
    return build


def build_grid0(d):
    plain(d)
    patch(d / "ts.mrc", 28, "i", 0)          # mx = 0: no sampling, no pixel size


def build_angles(text: bytes):
    def build(d):
        write_mrc(d / "ts.mrc", series())
        with open(d / "ts.tlt", "wb") as f:
            f.write(text)
    return build


def lines(values, fmt="{}\n"):
    return "".join(fmt.format(v) for v in values).encode()


def build_binary_angles(d):
    plain(d)
    os.remove(d / "ts.tlt")
    with open(d / "ts.mrc", "rb") as f, open(d / "ts.tlt", "wb") as g:
        g.write(f.read())


def build_nan(view, value=np.nan):
    def build(d):
        s = series()
        s[view - 1, 5, 7] = value
        plain(d, s)
    return build


def build_xf(text: bytes):
    def build(d):
        plain(d)
        with open(d / "ts.xf", "wb") as f:
            f.write(text)
    return build


IDENT = b"1 0 0 1 0 0\n"
XF_NAN = IDENT * 4 + b"nan 0 0 1 0 0\n" + IDENT * (N - 5)
XF_INF = IDENT * 2 + b"1 0 0 1 inf 0\n" + IDENT * (N - 3)
XF_FIVE = IDENT * 3 + b"1 0 0 1 0\n" + IDENT * (N - 4)
XF_SINGULAR = IDENT * 6 + b"0 0 0 0 1 1\n" + IDENT * (N - 7)
XF_TEXT = IDENT * 1 + b"one 0 0 1 0 0\n" + IDENT * (N - 2)


def build_file(name: str, content: bytes):
    def build(d):
        plain(d)
        with open(d / name, "wb") as f:
            f.write(content)
    return build


def build_volume(offset=None, fmt="i", value=0, data=None):
    def build(d):
        vol = np.zeros((8, 16, 16), np.float32) if data is None else data
        write_mrc(d / "vol.mrc", vol)
        if offset is not None:
            patch(d / "vol.mrc", offset, fmt, value)
    return build


def mdoc(angles):
    return "".join(f"[ZValue = {i}]\nTiltAngle = {a}\nExposureDose = 3\n\n"
                   for i, a in enumerate(angles)).encode()


def build_constant(d):
    plain(d, np.ones((N, 64, 64), np.float32))


# ---------------------------------------------------------------------------- the table
# The output option of each command ({c} in args).
OUTPUTS = {
    "interpolate": ["--output", "out.mrc", "--method", "linear"],
    "ctf": ["--output", "ctf.json"],
    "reconstruct": ["--output", "rec.mrc", "--thickness", "8"],
    "holdout": ["--method", "linear", "--report", "h.json"],
    "train": ["--output", "model", "--steps", "1", "--patch-size", "32", "--batch-size", "1",
              "--val-fraction", "0"],
}
READERS = ("interpolate", "ctf", "reconstruct", "holdout", "train")   # read a stack + angles
WITH_EXCLUDE = ("interpolate", "reconstruct", "holdout", "train")
WITH_XF = ("interpolate", "reconstruct", "holdout", "train")
WITH_PIXEL_SIZE = ("interpolate", "ctf", "reconstruct", "holdout")
NEEDS_PIXEL_SIZE = {"ctf": [], "reconstruct": [], "holdout": ["--defocus"]}


@dataclass
class Row:
    id: str
    command: str
    build: Callable
    args: List[str] = field(default_factory=list)
    code: int = 2
    fragment: str = ""
    stack: str = "ts.mrc"
    angles: str = "ts.tlt"
    full: Optional[List[str]] = None          # the whole command line (commands without --input)

    def argv(self) -> List[str]:
        if self.full is not None:
            return [self.command] + list(self.full)
        out = [self.command, "--input", self.stack, "--angles", self.angles]
        return out + OUTPUTS[self.command] + list(self.args) + ["--quiet"]


ROWS: List[Row] = []


def rows(case, commands, build, args=(), fragment="", code=2, **kw):
    for c in commands:
        ROWS.append(Row(f"{case}-{c}", c, build, list(args), code, fragment, **kw))


# C05: complex modes (3, 4) refused like other unsupported modes; variants: mode 101, 5.
rows("C05", READERS, build_complex, fragment="MRC mode 4 holds complex numbers")
rows("C05mode3", ("interpolate", "ctf"), build_header(12, "i", 3), fragment="MRC mode 3 holds complex")
rows("C05mode101", ("interpolate", "reconstruct"), build_header(12, "i", 101),
     fragment="MRC mode 101 is not supported")
# C06-C08 and variants: no usable pixel size in the header -> commands that need one ask.
for case, build in (("C06", build_px(0.0)), ("C07", build_px(float("nan"))),
                    ("C08", build_px(float("inf"))), ("C08neg", build_px(-3.0)),
                    ("C08grid0", build_grid0), ("C08huge", build_px(1e30)),
                    ("C08tiny", build_px(1e-30))):
    for c, extra in NEEDS_PIXEL_SIZE.items():
        rows(case, (c,), build, extra, fragment="give --pixel-size")
# C09: --pixel-size nan|inf|0|negative refused by every command that has it, before any work.
for value in ("nan", "inf", "0", "-2.5", "-inf"):
    rows(f"C09{value}", WITH_PIXEL_SIZE, plain, [f"--pixel-size={value}"],
         fragment=f"--pixel-size {float(value)}: give the pixel size in Angstrom")
# Absurd pixel sizes (outside 0.001..1e5 A): a cell size pixel x n overflows float32 to inf.
for value in ("1e38", "1e30", "1e-45"):
    rows(f"C09huge{value}", WITH_PIXEL_SIZE, plain, [f"--pixel-size={value}"],
         fragment=f"--pixel-size {float(value)}: give the pixel size in Angstrom")
# The same kind for every other number option: NaN/inf refused before any work.
rows("C09voltage", ("ctf", "reconstruct", "holdout"), plain, ["--voltage=nan"],
     fragment="--voltage nan: give a finite number")
rows("C09astig", ("ctf",), plain, ["--astig-max=nan"], fragment="--astig-max nan: give a finite number")
rows("C09memory", ("reconstruct",), plain, ["--max-memory=inf"],
     fragment="--max-memory inf: give a finite number")
rows("C09lr", ("train",), plain, ["--lr=nan"], fragment="--lr nan: give a finite number")
# C10, C11 and variants: broken headers -> one line naming the file and the field.
rows("C10", READERS, build_header(8, "i", -21), fragment="ts.mrc: broken MRC header: nz = -21")
rows("C11", READERS, build_header(0, "i", 0), fragment="ts.mrc: broken MRC header: nx = 0")
rows("C11ny", ("interpolate", "ctf"), build_header(4, "i", -5), fragment="broken MRC header: ny = -5")
rows("C11nsymbt", ("interpolate", "reconstruct"), build_header(92, "i", -1024),
     fragment="broken MRC header: nsymbt = -1024")
rows("C11big", ("interpolate", "holdout"), build_header(8, "i", 100000),
     fragment="truncated MRC file")
rows("C11tiff", ("interpolate", "ctf", "reconstruct", "holdout", "train"),
     build_file("ts.mrc", b"II*\x00" + bytes(range(256)) * 8 + b"\xff" * 4096),
     fragment="ts.mrc: not an MRC file (no 'MAP ' identifier")
rows("C11short", ("interpolate", "reconstruct"), build_file("ts.mrc", b"MAP " * 10),
     fragment="too small for an MRC header")
# C12: binary angle file; variant: text that is not UTF-8.
rows("C12", READERS, build_binary_angles, fragment="ts.tlt: binary data, not a text tilt-angle file")
rows("C12latin1", ("interpolate", "reconstruct"), build_angles(b"-24\xb0\n" + lines(ANGLES[1:])),
     fragment="ts.tlt: not a text tilt-angle file")
# C13: more than one column refused with the column count; variants.
IDX_TAB = "".join(f"{i + 1}\t{a:.2f}\n" for i, a in enumerate(ANGLES)).encode()
rows("C13", READERS, build_angles(IDX_TAB), fragment="ts.tlt, line 1: 2 columns")
rows("C13comma", ("interpolate", "ctf"),
     build_angles("".join(f"{a:.2f},3.0\n" for a in ANGLES).encode()), fragment="line 1: 2 columns")
rows("C13three", ("reconstruct", "holdout"),
     build_angles("".join(f"{i} {a:.2f} 1.5\n" for i, a in enumerate(ANGLES)).encode()),
     fragment="line 1: 3 columns")
rows("C13late", ("interpolate",), build_angles(lines(ANGLES[:4]) + b"12.00 7\n" + lines(ANGLES[5:])),
     fragment="ts.tlt, line 5: 2 columns")
rows("C13nan", ("interpolate", "reconstruct"), build_angles(lines(ANGLES[:3]) + b"nan\n" + lines(ANGLES[4:])),
     fragment="ts.tlt, line 4: tilt angle nan is outside [-90, 90]")
rows("C13range", ("ctf",), build_angles(lines(ANGLES[:-1]) + b"120\n"),
     fragment="ts.tlt, line 9: tilt angle 120.0 is outside [-90, 90]")
rows("C13word", ("holdout",), build_angles(lines(ANGLES[:2]) + b"minus30\n" + lines(ANGLES[3:])),
     fragment="ts.tlt, line 3: 'minus30' is not a tilt angle")
rows("C13empty", ("interpolate",), build_angles(b"\n# no angles\n\n"), fragment="no tilt angles")
rows("C13dup", ("interpolate", "reconstruct"), build_angles(lines(list(ANGLES[:-1]) + [ANGLES[0]])),
     fragment="appears more than once")
rows("C13count", ("ctf", "holdout"), build_angles(lines(ANGLES[:-1])), fragment="9 images in the stack but 8")
# C14 and variants: exclusion lists with one rule in every command.
rows("C14zero", WITH_EXCLUDE, plain, ["--exclude", "0"], fragment="view 0 does not exist")
rows("C14zerorange", ("interpolate", "reconstruct"), plain, ["--exclude", "0-2"],
     fragment="view 0 does not exist")
rows("C14negative", WITH_EXCLUDE, plain, ["--exclude=-3"], fragment="'-3' is negative")
rows("C14word", WITH_EXCLUDE, plain, ["--exclude", "1,a-b"], fragment="'a-b' is not a view number")
rows("C14beyond", WITH_EXCLUDE, plain, ["--exclude", "3,10"], fragment="excluded view 10 does not exist")
rows("C14beyondrev", ("interpolate", "reconstruct"), plain, ["--exclude", "12-8"],
     fragment="does not exist")
rows("C14all", ("interpolate", "holdout"), plain, ["--exclude", "1-9"],
     fragment="0 usable (not excluded) tilts")
rows("C14all", ("reconstruct",), plain, ["--exclude", "9-1"], fragment="0 tilt(s) left after exclusions")
# C15: NaN/inf pixels named before any work in every command; an inf variant.
rows("C15", READERS, build_nan(8), fragment="ts.mrc: NaN or infinite values in image(s) 8")
rows("C15inf", ("interpolate", "reconstruct", "holdout"), build_nan(3, np.inf),
     fragment="NaN or infinite values in image(s) 3")
# C17: NaN/inf in an .xf line named with the file and line, in every command that reads .xf.
rows("C17", WITH_XF, build_xf(XF_NAN), ["--xf", "ts.xf"], fragment="ts.xf, line 5: NaN or infinite")
rows("C17inf", ("interpolate", "reconstruct"), build_xf(XF_INF), ["--xf", "ts.xf"],
     fragment="ts.xf, line 3: NaN or infinite")
rows("C17five", ("interpolate", "holdout"), build_xf(XF_FIVE), ["--xf", "ts.xf"],
     fragment="ts.xf, line 4: expected 6 numbers (A11 A12 A21 A22 DX DY), found 5")
rows("C17singular", ("reconstruct", "train"), build_xf(XF_SINGULAR), ["--xf", "ts.xf"],
     fragment="ts.xf, line 7: the transform matrix is singular")
rows("C17text", ("interpolate",), build_xf(XF_TEXT), ["--xf", "ts.xf"],
     fragment="ts.xf, line 2: not an IMOD .xf line")
rows("C17binary", ("interpolate", "reconstruct"), build_xf(b"\x00\x01\x02" * 40), ["--xf", "ts.xf"],
     fragment="ts.xf: binary data")
rows("C17count", ("interpolate",), build_xf(IDENT * (N - 1)), ["--xf", "ts.xf"],
     fragment="8 transforms for 9 images")
# Other input files read by the commands: the same kinds (binary, malformed, NaN).
BINARY = bytes(range(256)) * 4
rows("C12acq", ("interpolate", "holdout"), build_file("acq.json", BINARY),
     ["--acquisition-json", "acq.json"], fragment="acq.json: not valid JSON")
rows("C17acqnan", ("interpolate",), build_file("acq.json", b'{"dose": [3, 3, NaN, 3, 3, 3, 3, 3, 3]}'),
     ["--acquisition-json", "acq.json"], fragment="acq.json: 'dose' holds nan")
rows("C17acqorder", ("holdout",), build_file("acq.json", b'{"order": [1, 2, 3.5, 4, 5, 6, 7, 8, 9]}'),
     ["--acquisition-json", "acq.json"], fragment="acq.json: 'order' holds 3.5")
rows("C12plan", ("ctf",), build_file("plan.json", BINARY), ["--plan", "plan.json"],
     fragment="plan.json: not an interpolation record")
rows("C12plan", ("reconstruct",), build_file("plan.json", BINARY), ["--exclude-synthetic", "plan.json"],
     fragment="plan.json: not an interpolation record")
rows("C13plan", ("ctf",), build_file("plan.json", b'{"a": 1}'), ["--plan", "plan.json"],
     fragment="plan.json: not an interpolation record")
rows("C12ctf", ("reconstruct",), build_file("c.json", BINARY), ["--ctf", "c.json"],
     fragment="c.json: not valid JSON")
rows("C12mdoc", ("interpolate",), build_file("ts.mdoc", BINARY), ["--mdoc", "ts.mdoc"],
     fragment="ts.mdoc: no [ZValue = n] sections")
rows("C13mdocnan", ("holdout",), build_file("ts.mdoc", mdoc(list(ANGLES[:3]) + ["nan"] + list(ANGLES[4:]))),
     ["--mdoc", "ts.mdoc"], fragment="ts.mdoc: section [ZValue = 3]: TiltAngle 'nan' is not an angle")
def mdoc_with(z, key, value):
    text = mdoc(ANGLES).decode().split("\n\n")
    text[z] = text[z].replace("ExposureDose = 3", "") + f"{key} = {value}\n"
    return ("\n\n".join(text)).encode()


# A dose in an .mdoc: the same rule as --acquisition-json (finite, >= 0); one section per image.
for key, value in (("ExposureDose", "nan"), ("ExposureDose", "-3"), ("ExposureDose", "inf"),
                   ("ExposureDose", "n/a"), ("PriorRecordDose", "nan")):
    rows(f"C17mdoc{key}{value}", ("interpolate", "holdout"),
         build_file("ts.mdoc", mdoc_with(4, key, value)), ["--mdoc", "ts.mdoc"],
         fragment=f"ts.mdoc: section [ZValue = 4]: {key} '{value}' is not a dose")
rows("C13mdocdupz", ("interpolate",),
     build_file("ts.mdoc", mdoc(ANGLES[:-1]) + b"[ZValue = 2]\nTiltAngle = 30\nExposureDose = 3\n"),
     ["--mdoc", "ts.mdoc"], fragment="ts.mdoc: section [ZValue = 2] appears more than once")
# An empty path (an unset shell variable) is refused, never read as "left out" (--xf '' ran
# without alignment) or as the current folder (--output '' for train = replace the folder).
rows("Cemptyout", ("interpolate", "ctf", "reconstruct", "train"), plain, ["--output="],
     fragment="--output '': an empty path")
rows("Cemptyxf", ("interpolate", "reconstruct", "holdout"), plain, ["--xf="],
     fragment="--xf '': an empty path")
rows("Cemptyreport", ("holdout",), plain, ["--report="], fragment="--report '': an empty path")
# simulate reads a volume through the same MRC reader.
for case, build, frag in (("C05", build_volume(12, "i", 4), "MRC mode 4 holds complex"),
                          ("C10", build_volume(8, "i", -8), "broken MRC header: nz = -8"),
                          ("C11", build_volume(0, "i", 0), "broken MRC header: nx = 0")):
    ROWS.append(Row(f"{case}-simulate", "simulate", build, code=2, fragment=frag,
                    full=["--volume", "vol.mrc", "--output", "sim.mrc", "--step", "30"]))
ROWS.append(Row("C09-simulate", "simulate", build_volume(), code=2, fragment="--pixel-size nan",
                full=["--volume", "vol.mrc", "--output", "sim.mrc", "--pixel-size", "nan"]))
# export reads a stack, its interpolation record and a CTF.json through the same readers.
def build_export(header=None, px=PX, record=True, ctf=None):
    def build(d):
        plain(d, px=px)
        if header is not None:
            patch(d / "ts.mrc", *header)
        if record:
            with open(d / "ts.json", "w") as f:
                json.dump([{"angle": float(a), "index": i, "synthetic": False}
                           for i, a in enumerate(ANGLES)], f)
        if ctf is not None:
            with open(d / "c.json", "wb") as f:
                f.write(ctf)
    return build


EXPORT = ["--input", "ts.mrc", "--format", "imod", "--output", "exp", "--quiet"]
for case, build, extra, frag in (
        ("C05", build_export((12, "i", 4)), [], "MRC mode 4 holds complex"),
        ("C10", build_export((8, "i", -21)), [], "broken MRC header: nz = -21"),
        ("C11", build_export((0, "i", 0)), [], "broken MRC header: nx = 0"),
        ("C07", build_export(px=float("nan")), [], "give --pixel-size"),
        ("C09", build_export(), ["--pixel-size=nan"], "--pixel-size nan"),
        ("C12ctf", build_export(ctf=BINARY), ["--ctf", "c.json"], "c.json"),
        ("C12record", build_export(record=False), ["--record", "ts.tlt"], "ts.tlt")):
    ROWS.append(Row(f"{case}-export", "export", build, code=2, fragment=frag, full=EXPORT + extra))
# parallel reads a text file of command lines through the same text reader.
ROWS.append(Row("C12-parallel", "parallel", build_file("tasks.txt", BINARY), code=2,
                fragment="tasks.txt: binary data, not a text tasks file",
                full=["tasks.txt", "--gpu-ids", "0"]))
# C18: nothing to fit -> refused (every tilt featureless); partly featureless: see below.
rows("C18", ("ctf",), build_constant, fragment="every tilt (9) is featureless")


def _sha(folder):
    out = {}
    for name in sorted(os.listdir(folder)):
        p = os.path.join(folder, name)
        with open(p, "rb") as f:
            out[name] = hashlib.sha256(f.read()).hexdigest()
    return out


def run_cli(argv, capsys):
    capsys.readouterr()
    code = cli.main(argv)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input(row, tmp_path, monkeypatch, capsys):
    if row.command == "train":
        pytest.importorskip("tensorflow")
    row.build(tmp_path)
    before = _sha(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(row.argv(), capsys)
    assert code == row.code, (code, err)
    lines_ = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines_) == 1, err                       # ONE line naming the problem
    assert lines_[0].startswith(f"cryotiger {row.command}: error: "), err
    assert row.fragment in lines_[0], err
    assert "Traceback" not in err
    assert _sha(tmp_path) == before                  # inputs unchanged, nothing left behind


# ---------------------------------------------------------------------------- good cases
def _interp(tmp_path, capsys, *args, stack="ts.mrc", angles="ts.tlt", out="out.mrc"):
    code, o, err = run_cli(["interpolate", "--input", str(tmp_path / stack), "--angles",
                            str(tmp_path / angles), "--output", str(tmp_path / out),
                            "--method", "linear", "--quiet", *args], capsys)
    assert code == 0, err
    return err


def _imod_u8(path, values, flags):
    u = np.empty((len(values), 16, 16), np.uint8)
    for i, v in enumerate(values):
        u[i] = v
    write_mrc(path, u.view(np.int8))
    with open(path, "r+b") as f:
        f.seek(152)
        f.write(struct.pack("<ii", 1146047817, flags))


def test_imod_8bit_is_unsigned_unless_flag_bit0(tmp_path, capsys):
    """C04: IMOD stamp + imodFlags bit 0 clear = unsigned bytes (IMOD's rule)."""
    _imod_u8(tmp_path / "u8.mrc", [200, 100, 250], flags=0)
    write_tlt(tmp_path / "u8.tlt", [-3, 0, 3])
    _interp(tmp_path, capsys, stack="u8.mrc", angles="u8.tlt")
    with mrcfile.open(tmp_path / "out.mrc") as m:
        means = [float(s.mean()) for s in m.data]
    assert means == pytest.approx([200, 150, 100, 175, 250])


def test_imod_8bit_signed_flag_and_unstamped_mode0_are_signed(tmp_path, capsys):
    """imodFlags bit 0 set = signed bytes; no IMOD stamp = MRC2014 (signed), as mrcfile."""
    _imod_u8(tmp_path / "s8.mrc", [200, 100, 250], flags=1)
    write_mrc(tmp_path / "plain8.mrc", np.array([[[-56]], [[100]], [[-6]]], np.int8).repeat(8, 1).repeat(8, 2))
    write_tlt(tmp_path / "a.tlt", [-3, 0, 3])
    from cryotiger_scipion.engine.formats.mrc import read_stack
    for name in ("s8.mrc", "plain8.mrc"):
        data, _ = read_stack(str(tmp_path / name))
        assert [float(s.mean()) for s in data] == [-56.0, 100.0, -6.0]


@pytest.mark.parametrize("build,expected", [(build_px(0.0), 0.0), (build_px(float("nan")), 0.0),
                                            (build_px(float("inf")), 0.0), (build_px(-3.0), 0.0),
                                            (build_grid0, 0.0), (build_px(1e30), 0.0),
                                            (plain, PX)])
def test_unknown_pixel_size_stays_unknown(build, expected, tmp_path, capsys):
    """C06-C08: a header without a usable pixel size is 'unknown': interpolate
    writes 0 (never NaN/inf); --pixel-size then sets it."""
    build(tmp_path)
    _interp(tmp_path, capsys)
    with mrcfile.open(tmp_path / "out.mrc") as m:
        assert float(m.voxel_size.x) == pytest.approx(expected)
        assert np.isfinite(m.header.cella.x)
    _interp(tmp_path, capsys, "--pixel-size", "2.5", out="given.mrc")
    with mrcfile.open(tmp_path / "given.mrc") as m:
        assert float(m.voxel_size.x) == pytest.approx(2.5)


def test_given_pixel_size_is_used_by_reconstruct_when_the_header_has_none(tmp_path, capsys):
    build_px(float("nan"))(tmp_path)
    code, _, err = run_cli(["reconstruct", "--input", str(tmp_path / "ts.mrc"), "--angles",
                            str(tmp_path / "ts.tlt"), "--output", str(tmp_path / "rec.mrc"),
                            "--thickness", "8", "--pixel-size", "3.5", "--quiet"], capsys)
    assert code == 0, err
    with mrcfile.open(tmp_path / "rec.mrc") as m:
        assert float(m.voxel_size.x) == pytest.approx(3.5)


@pytest.mark.parametrize("text,expected", [("12-10", [9, 10, 11]), ("10-12", [9, 10, 11]),
                                           ("3,3,2-4", [1, 2, 3]), ("1, 4 - 6", [0, 3, 4, 5]),
                                           ("1 4", [0, 3]), ("", []), ("7-7", [6])])
def test_view_list_rules(text, expected):
    """C14: one rule for every command: reversed ranges read in order, duplicates once."""
    from cryotiger_scipion.engine.interpolate import parse_view_list
    assert parse_view_list(text) == expected


def test_reversed_exclude_range_excludes_views_10_to_12(tmp_path, capsys):
    """C14 in interpolate and reconstruct: '12-10' = views 10, 11, 12."""
    plain(tmp_path, series(n=13))
    write_tlt(tmp_path / "ts.tlt", np.linspace(-24, 24, 13))
    _interp(tmp_path, capsys, "--exclude", "12-10")
    record = json.load(open(tmp_path / "out.json"))
    excluded = sorted(e["input_index"] + 1 for e in record if e["excluded"])
    assert excluded == [10, 11, 12]
    vols = []
    for name, text in (("rev.mrc", "12-10"), ("fwd.mrc", "10,11,12"), ("none.mrc", "")):
        code, _, err = run_cli(["reconstruct", "--input", str(tmp_path / "ts.mrc"), "--angles",
                                str(tmp_path / "ts.tlt"), "--output", str(tmp_path / name),
                                "--thickness", "8", "--exclude", text, "--quiet"], capsys)
        assert code == 0, err
        with mrcfile.open(tmp_path / name) as m:
            vols.append(np.array(m.data))
    np.testing.assert_array_equal(vols[0], vols[1])
    assert np.abs(vols[0] - vols[2]).max() > 1e-3


def test_excluded_nan_view_is_accepted_and_left_out(tmp_path, capsys):
    """C16: a NaN view that the user excluded is not used: finite output without it."""
    build_nan(4)(tmp_path)
    _interp(tmp_path, capsys, "--exclude", "4")
    with mrcfile.open(tmp_path / "out.mrc") as m:
        data = np.array(m.data)
    record = json.load(open(tmp_path / "out.json"))
    assert np.all(np.isfinite(data))
    assert len(record) == data.shape[0] == (N - 1) + (N - 2)
    assert 3 not in [e["input_index"] for e in record]
    for cmd in (["reconstruct", "--output", str(tmp_path / "rec.mrc"), "--thickness", "8"],
                ["holdout", "--method", "linear", "--report", str(tmp_path / "h.json")]):
        code, _, err = run_cli(cmd + ["--input", str(tmp_path / "ts.mrc"), "--angles",
                                      str(tmp_path / "ts.tlt"), "--exclude", "4", "--quiet"], capsys)
        assert code == 0, err


@pytest.mark.parametrize("text", [
    b"\xef\xbb\xbf" + lines(ANGLES),                        # UTF-8 BOM
    lines(ANGLES, "{:.2f}\r\n"),                            # CRLF
    lines(ANGLES, "  {:.2f}   \n"),                         # spaces around the number
    b"# tilt angles\n\n" + lines(ANGLES[:4]) + b"\n" + lines(ANGLES[4:]),   # comment, blank lines
    lines(ANGLES, "{:.2f}   # view\n"),                    # comment after the angle
    lines(ANGLES[::-1]),                                     # not monotonic: stack order is free
    lines(ANGLES).rstrip(b"\n"),                             # no final newline
    "\ufeff".encode("utf-16-le") + lines(ANGLES, "{:.2f}\r\n").decode().encode("utf-16-le"),  # UTF-16
])
def test_angle_file_variants_that_are_accepted(text, tmp_path):
    from cryotiger_scipion.engine.formats.tlt import read_angles
    with open(tmp_path / "a.tlt", "wb") as f:
        f.write(text)
    got = read_angles(str(tmp_path / "a.tlt"))
    want = ANGLES[::-1] if text == lines(ANGLES[::-1]) else ANGLES
    np.testing.assert_allclose(got, np.round(want, 2))


def test_estimate_image_refuses_a_featureless_image():
    """The single-image estimator (holdout --defocus) refuses instead of fitting."""
    from cryotiger_scipion.engine import InputError, ctf
    scope = ctf.Microscope(pixel_size=2.0)
    yy, xx = np.mgrid[:64, :64]
    for img in (np.full((64, 64), 7.0), 1.0 + 0.01 * xx - 0.02 * yy):
        with pytest.raises(InputError, match="its CTF cannot be estimated"):
            ctf.estimate_image(img, scope, ctf.FitOptions())


def test_featureless_tilts_are_marked_not_estimated(tmp_path, capsys):
    """C18 (partly featureless): constant tilts get "estimated": false and no defocus;
    the others are fitted; reconstruct refuses them unless excluded."""
    from scipy import ndimage
    rng = np.random.default_rng(3)
    imgs = [ndimage.gaussian_filter(rng.normal(0, 1, (64, 64)), 0.8) for _ in range(N)]
    data = (1.0 + 0.1 * np.asarray(imgs)).astype(np.float32)
    data[2] = 1.0                                               # constant
    yy, xx = np.mgrid[:64, :64]
    data[5] = (1.0 + 0.001 * xx + 0.002 * yy).astype(np.float32)   # smooth ramp
    plain(tmp_path, data, px=2.0)
    code, _, err = run_cli(["ctf", "--input", str(tmp_path / "ts.mrc"), "--angles",
                            str(tmp_path / "ts.tlt"), "--output", str(tmp_path / "ctf.json"),
                            "--quiet"], capsys)
    assert code == 0, err
    assert "tilt(s) 3, 6 (numbered from 1) are featureless" in err
    entries = json.load(open(tmp_path / "ctf.json"))
    assert [e["estimated"] for e in entries] == [i not in (2, 5) for i in range(N)]
    for i in (2, 5):
        assert entries[i]["defocus_u"] is None and entries[i]["defocus"] is None
        assert entries[i]["fit_score"] is None
    assert all(e["defocus_u"] > 0 for i, e in enumerate(entries) if i not in (2, 5))
    rec = ["reconstruct", "--input", str(tmp_path / "ts.mrc"), "--angles", str(tmp_path / "ts.tlt"),
           "--output", str(tmp_path / "rec.mrc"), "--thickness", "8", "--ctf",
           str(tmp_path / "ctf.json"), "--ctf-correction", "phaseflip", "--quiet"]
    code, _, err = run_cli(rec, capsys)
    assert code == 2 and "tilt(s) 3, 6 (numbered from 1) as not estimated" in err
    code, _, err = run_cli(rec + ["--exclude", "3,6"], capsys)
    assert code == 0, err


def test_train_keeps_its_empty_xf_placeholder_but_refuses_an_empty_output():
    """train's --xf '' (one per --input: an aligned series) is a contract the
    Scipion train protocol uses; an empty --output is refused like every empty path."""
    from cryotiger_scipion.engine import InputError
    from cryotiger_scipion.engine.inputs import preflight
    parser = cli.build_parser()
    ok = parser.parse_args(["train", "--input", "a.mrc", "--angles", "a.tlt", "--xf", "",
                            "--input", "b.mrc", "--angles", "b.tlt", "--xf", "b.xf",
                            "--output", "model"])
    preflight(ok)                                   # no error
    bad = parser.parse_args(["train", "--input", "a.mrc", "--angles", "a.tlt", "--output", ""])
    with pytest.raises(InputError, match="--output '': an empty path"):
        preflight(bad)
