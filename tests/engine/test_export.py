"""`cryotiger export` (issue 15): IMOD, STOPGAP/cryoCAT and RELION 5 metadata of
interpolated series, from the product's own records, read back with starfile
and with the product's readers, values against hand-computed ones."""
import json
import os
import subprocess

import mrcfile
import numpy as np
import pytest
import starfile

from cryotiger_scipion.engine.formats.xf import read_xf
from cryotiger_scipion.engine.export import (format_view_list, read_imod_defocus,
                                             read_stopgap_synthetic_rows, relion_image_name)
from cryotiger_scipion.engine.interpolate import parse_view_list
from cryotiger_scipion.engine.formats.mrc import write_stack
from cryotiger_scipion.engine.formats.tlt import read_angles, write_angles
from conftest import cryotiger_cmd

# Input: 7 tilts -9..9 every 3 deg, dose-symmetric-like acquisition order WITH GAPS
# (orders 1,2,4,5,7,8,10: tilts 3, 6 and 9 were dropped at acquisition), doses per image.
ANGLES = np.arange(-9, 9.1, 3.0)
ORDERS = [8, 4, 2, 1, 5, 7, 10]          # stack order (angle order)
DOSES = [3.0, 2.0, 2.0, 1.0, 2.0, 3.0, 4.0]
# Accumulated dose BEFORE each image (by acquisition order 1, 2, 4, 5, 7, 8, 10:
# views 4, 3, 2, 5, 6, 1, 7): view4 0, view3 1, view2 3, view5 5, view6 7, view1 10, view7 13.
ACCUM = [10.0, 3.0, 1.0, 0.0, 5.0, 7.0, 13.0]


def run(*args):
    return subprocess.run(cryotiger_cmd() + [str(a) for a in args], capture_output=True, text=True)


@pytest.fixture
def interpolated(tmp_path):
    """OUT.mrc + OUT.json from the real `cryotiger interpolate` (linear, 3 per gap,
    view 3 (-3 deg) excluded): 7 + 5 * 3 = 22 output tilts, 15 synthetic."""
    rng = np.random.default_rng(3)
    write_stack(str(tmp_path / "TS.mrc"), rng.normal(0, 1, (7, 24, 32)).astype(np.float32), 2.5)
    write_angles(str(tmp_path / "TS.tlt"), ANGLES)
    with open(tmp_path / "acq.json", "w") as f:
        json.dump({"order": ORDERS, "dose": DOSES, "accum_dose": ACCUM}, f)
    r = run("interpolate", "--input", tmp_path / "TS.mrc", "--angles", tmp_path / "TS.tlt",
            "--output", tmp_path / "OUT.mrc", "--method", "linear", "--per-gap", 3,
            "--exclude", "3", "--acquisition-json", tmp_path / "acq.json", "--quiet")
    assert r.returncode == 0, r.stderr
    record = json.load(open(tmp_path / "OUT.json"))
    assert len(record) == 22 and sum(e["synthetic"] for e in record) == 15
    return tmp_path, record


def write_ctf(path, record, astig=True, by_order=True, skip_orders=(), shuffle=True):
    """CTF.json for the record's tilts: defocus U = 20000 + 100 * angle A, V = U - 300
    (astigmatic) or U, angle 30 + angle deg; entries carry acquisition_order and are
    written in a shuffled order (matching must not rely on the position)."""
    entries = []
    for e in record:
        if e["acquisition_order"] in skip_orders:
            continue
        u = 20000.0 + 100.0 * e["angle"]
        d = {"angle": e["angle"], "defocus_u": u, "defocus_v": u - 300.0 if astig else u,
             "astig_angle": 30.0 + e["angle"]}
        if by_order:
            d["acquisition_order"] = e["acquisition_order"]
        entries.append(d)
    if shuffle:
        entries = entries[::-1][1::2] + entries[::-1][0::2]
    with open(path, "w") as f:
        json.dump(entries, f)


def expected_defocus(angle, astig=True):
    u = 20000.0 + 100.0 * angle
    return u, (u - 300.0 if astig else u), 30.0 + angle


# ---------------------------------------------------------------------------
# Values against hand-computed ones
# ---------------------------------------------------------------------------
def test_doses_of_synthetic_tilts_hand_computed(interpolated):
    """Synthetic tilts at t = 0.25, 0.5, 0.75 between two anchors: dose and dose
    before the image weighted like the pixels; RELION pre-exposure = dose before,
    STOPGAP exposure = dose before + own dose."""
    d, record = interpolated
    r = run("export", "--input", d / "OUT.mrc", "--format", "relion5", "--output", d / "rel")
    assert r.returncode == 0, r.stderr
    r = run("export", "--input", d / "OUT.mrc", "--format", "stopgap", "--output", d / "sg")
    assert r.returncode == 0, r.stderr
    tilts = starfile.read(d / "rel" / "OUT.star")
    wedge = starfile.read(d / "sg" / "OUT_wedgelist.star")
    pre = dict(zip(tilts["rlnTomoNominalStageTiltAngle"].round(4), tilts["rlnMicrographPreExposure"]))
    exposure = dict(zip(wedge["tilt_angle"].round(4), wedge["exposure"]))
    # Between -9 (before 10, dose 3) and -6 (before 3, dose 2):
    #   -8.25 (t=0.25): before 0.75*10 + 0.25*3 = 8.25, dose 0.75*3 + 0.25*2 = 2.75 -> exposure 11.0
    #   -7.5  (t=0.5):  before 6.5, dose 2.5 -> 9.0;  -6.75 (t=0.75): before 4.75, dose 2.25 -> 7.0
    assert pre[-8.25] == pytest.approx(8.25) and exposure[-8.25] == pytest.approx(11.0)
    assert pre[-7.5] == pytest.approx(6.5) and exposure[-7.5] == pytest.approx(9.0)
    assert pre[-6.75] == pytest.approx(4.75) and exposure[-6.75] == pytest.approx(7.0)
    # View 3 (-3 deg) is excluded: the gap is -6 .. 0 (before 3 / 0, dose 2 / 1), step 1.5:
    #   -4.5 (t=0.25): before 2.25, dose 1.75 -> 4.0; -1.5 (t=0.75): before 0.75, dose 1.25 -> 2.0
    assert pre[-4.5] == pytest.approx(2.25) and exposure[-4.5] == pytest.approx(4.0)
    assert pre[-1.5] == pytest.approx(0.75) and exposure[-1.5] == pytest.approx(2.0)
    # Real tilts keep their own values; the last one: before 13, dose 4.
    assert pre[9.0] == pytest.approx(13.0) and exposure[9.0] == pytest.approx(17.0)
    assert pre[0.0] == pytest.approx(0.0) and exposure[0.0] == pytest.approx(1.0)


def test_defocus_matched_by_acquisition_order_with_gaps(interpolated):
    """CTF entries in a shuffled order, matched by acquisition order (orders have
    gaps: 1,2,4,5,7,8,10 for real tilts, 11.. for synthetic ones); the CTF of the
    excluded view is absent. Every used tilt gets ITS defocus in every format."""
    d, record = interpolated
    excluded_order = next(e["acquisition_order"] for e in record if e["excluded"])
    write_ctf(d / "CTF.json", record, skip_orders=(excluded_order,))
    for fmt in ("relion5", "stopgap", "imod"):
        r = run("export", "--input", d / "OUT.mrc", "--ctf", d / "CTF.json", "--format", fmt,
                "--output", d / fmt)
        assert r.returncode == 0, r.stderr
    tilts = starfile.read(d / "relion5" / "OUT.star")
    for _, row in tilts.iterrows():
        u, v, a = expected_defocus(row["rlnTomoNominalStageTiltAngle"])
        assert row["rlnDefocusU"] == pytest.approx(u) and row["rlnDefocusV"] == pytest.approx(v)
        assert row["rlnDefocusAngle"] == pytest.approx(a)
    wedge = starfile.read(d / "stopgap" / "OUT_wedgelist.star")
    for _, row in wedge.iterrows():
        u, v, _ = expected_defocus(row["tilt_angle"])
        assert row["defocus"] == pytest.approx((u + v) / 2 / 1e4, abs=1e-6)     # micrometres
    imod = read_imod_defocus(str(d / "imod" / "OUT.defocus"))
    assert imod["version"] == 3 and imod["astigmatic"]
    assert imod["views"] == [(i, i) for i in range(1, 23)]
    for i, e in enumerate(record):
        # the excluded view has no CTF: it takes the nearest tilt's (same angle: the synthetic -3)
        u, v, a = expected_defocus(e["angle"])
        assert imod["angles"][i] == pytest.approx(e["angle"], abs=0.01)
        assert imod["defocus_u"][i] == pytest.approx(u, abs=0.5)
        assert imod["defocus_v"][i] == pytest.approx(v, abs=0.5)
        assert imod["astig_angle"][i] == pytest.approx(a, abs=0.01)


def test_defocus_by_stack_position_and_version2_without_astigmatism(interpolated):
    """Entries without acquisition_order, one per image in stack order: matched by
    position; no astigmatism -> IMOD version 2 layout (mean defocus, '2' on row 1)."""
    d, record = interpolated
    write_ctf(d / "CTF.json", record, astig=False, by_order=False, shuffle=False)
    r = run("export", "--input", d / "OUT.mrc", "--ctf", d / "CTF.json", "--format", "imod",
            "--output", d / "imod")
    assert r.returncode == 0, r.stderr
    first = open(d / "imod" / "OUT.defocus").readline().split()
    assert len(first) == 6 and first[-1] == "2"
    imod = read_imod_defocus(str(d / "imod" / "OUT.defocus"))
    assert imod["version"] == 2 and not imod["astigmatic"]
    assert imod["defocus_u"] == pytest.approx([20000 + 100 * e["angle"] for e in record], abs=0.5)


def test_ctf_position_match_checks_angles(interpolated):
    d, record = interpolated
    entries = [{"angle": e["angle"] + (1.0 if i == 5 else 0.0), "defocus_u": 20000.0}
               for i, e in enumerate(record)]
    json.dump(entries, open(d / "CTF.json", "w"))
    r = run("export", "--input", d / "OUT.mrc", "--ctf", d / "CTF.json", "--format", "relion5",
            "--output", d / "rel")
    assert r.returncode == 2
    assert "image 6" in r.stderr and "CTF estimated on this stack" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (d / "rel").exists() or not os.listdir(d / "rel")


# ---------------------------------------------------------------------------
# Every format on a series with excluded views and synthetic tilts
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("experimental_only", [False, True])
def test_every_format_excluded_and_synthetic(interpolated, experimental_only):
    d, record = interpolated
    write_ctf(d / "CTF.json", record)
    extra = ["--experimental-only"] if experimental_only else []
    out = d / "out"
    for fmt in ("imod", "stopgap", "relion5"):
        r = run("export", "--input", d / "OUT.mrc", "--ctf", d / "CTF.json", "--format", fmt,
                "--output", out, "--tomo-size", "32,24,40", *extra)
        assert r.returncode == 0, r.stderr
    angles = [e["angle"] for e in record]
    excluded = [i for i, e in enumerate(record) if e["excluded"]]
    synthetic = [i for i, e in enumerate(record) if e["synthetic"]]
    assert excluded == [6]                       # input view 3 (-3 deg) is output view 7
    used = [i for i in range(22) if i not in excluded and not (experimental_only and i in synthetic)]
    # IMOD: every view in .tlt/.xf/.defocus; the exclude list carries the left-out ones.
    assert read_angles(str(out / "OUT.tlt")) == pytest.approx(angles, abs=1e-4)
    xf = read_xf(str(out / "OUT.xf"))
    assert xf.shape == (22, 2, 3) and np.allclose(xf, [[1, 0, 0], [0, 1, 0]])
    assert len(read_imod_defocus(str(out / "OUT.defocus"))["angles"]) == 22
    left_out = parse_view_list(open(out / "OUT_exclude.txt").read().strip())
    assert left_out == sorted(excluded + (synthetic if experimental_only else []))
    assert parse_view_list(open(out / "OUT_synthetic.txt").read().strip()) == synthetic
    # STOPGAP: one row per used tilt, synthetic rows named in the comment.
    wedge = starfile.read(out / "OUT_wedgelist.star")
    assert list(wedge["tilt_angle"]) == pytest.approx([angles[i] for i in used])
    assert set(wedge["tomo_num"]) == {1} and set(wedge["tomo_z"]) == {40}
    rows = read_stopgap_synthetic_rows(str(out / "OUT_wedgelist.star"))
    assert rows == [k + 1 for k, i in enumerate(used) if i in synthetic]
    assert (rows == []) == experimental_only
    # RELION 5: one row per used tilt, image names into the stack, synthetic column.
    tilts = starfile.read(out / "OUT.star")
    assert list(tilts["rlnMicrographName"]) == [relion_image_name(str(d / "OUT.mrc"), i) for i in used]
    assert list(tilts["cryotigerSynthetic"]) == [int(i in synthetic) for i in used]
    glob = starfile.read(out / "tomograms.star")
    assert list(glob["rlnTomoName"]) == ["OUT"]
    assert glob["rlnTomoTiltSeriesStarFile"][0] == str(out / "OUT.star")


def test_relion_image_names_point_at_the_right_slices(interpolated):
    """'k@stack:mrcs' (RELION reads .mrc as a 3D map otherwise): slice k (from 1)
    of OUT.mrc is the tilt at the row's angle."""
    d, record = interpolated
    r = run("export", "--input", d / "OUT.mrc", "--format", "relion5", "--output", d / "rel")
    assert r.returncode == 0, r.stderr
    tilts = starfile.read(d / "rel" / "OUT.star")
    stack_angles = read_angles(str(d / "OUT.tlt"))
    with mrcfile.open(d / "OUT.mrc") as m:
        n = m.data.shape[0]
    for name, angle in zip(tilts["rlnMicrographName"], tilts["rlnTomoNominalStageTiltAngle"]):
        k, path = name.split("@", 1)
        assert path == str(d / "OUT.mrc") + ":mrcs" and 1 <= int(k) <= n
        assert stack_angles[int(k) - 1] == pytest.approx(angle, abs=1e-4)
    assert relion_image_name("/x/TS.mrcs", 0) == "1@/x/TS.mrcs"
    assert relion_image_name("/x/TS.st", 4) == "5@/x/TS.st"


# RELION 5 labels used, with their types as defined in RELION 5's
# src/metadata_label.h (EMDL::addLabel(..., EMDL_DOUBLE|EMDL_INT|EMDL_STRING, ...)).
RELION_TILT_TYPES = {"rlnMicrographName": str, "rlnTomoNominalStageTiltAngle": float,
                     "rlnTomoNominalTiltAxisAngle": float, "rlnMicrographPreExposure": float,
                     "rlnDefocusU": float, "rlnDefocusV": float, "rlnDefocusAngle": float,
                     "rlnTomoXTilt": float, "rlnTomoYTilt": float, "rlnTomoZRot": float,
                     "rlnTomoXShiftAngst": float, "rlnTomoYShiftAngst": float}
RELION_GLOBAL_TYPES = {"rlnTomoName": str, "rlnTomoTiltSeriesStarFile": str, "rlnVoltage": float,
                       "rlnSphericalAberration": float, "rlnAmplitudeContrast": float,
                       "rlnMicrographOriginalPixelSize": float, "rlnTomoHand": float,
                       "rlnOpticsGroupName": str, "rlnTomoTiltSeriesPixelSize": float,
                       "rlnTomoSizeX": int, "rlnTomoSizeY": int, "rlnTomoSizeZ": int}


def _check_types(df, types):
    for col, typ in types.items():
        assert col in df.columns, col
        kind = df[col].dtype.kind
        assert {str: "O", float: "f", int: "i"}[typ] == kind, (col, df[col].dtype)


def test_relion5_columns_and_types_as_documented(interpolated):
    """Block names (data_<rlnTomoName> per tilt series, data_global), the labels
    RELION 5 reads (TomogramSet::loadTomogram: compulsory rlnMicrographPreExposure,
    rlnMicrographName, the four alignment labels, defocus U/V/angle) with
    RELION's types, and values: pixel size, microscope, tomogram size, hand."""
    d, record = interpolated
    write_ctf(d / "CTF.json", record)
    r = run("export", "--input", d / "OUT.mrc", "--ctf", d / "CTF.json", "--format", "relion5",
            "--output", d / "rel", "--voltage", 200, "--cs", 2.1, "--amp-contrast", 0.1,
            "--tomo-size", "32,24,40", "--hand", 1)
    assert r.returncode == 0, r.stderr
    blocks = starfile.read(d / "rel" / "OUT.star", always_dict=True)
    assert list(blocks) == ["OUT"]
    tilts = blocks["OUT"]
    _check_types(tilts, RELION_TILT_TYPES)
    assert tilts["cryotigerSynthetic"].dtype.kind == "i"
    assert np.allclose(tilts["rlnTomoYTilt"], tilts["rlnTomoNominalStageTiltAngle"])
    assert np.allclose(tilts[["rlnTomoXTilt", "rlnTomoZRot", "rlnTomoXShiftAngst",
                              "rlnTomoYShiftAngst", "rlnTomoNominalTiltAxisAngle"]], 0.0)
    gblocks = starfile.read(d / "rel" / "tomograms.star", always_dict=True)
    assert list(gblocks) == ["global"]
    glob = gblocks["global"]
    _check_types(glob, RELION_GLOBAL_TYPES)
    row = glob.iloc[0]
    assert (row["rlnVoltage"], row["rlnSphericalAberration"], row["rlnAmplitudeContrast"]) == \
        pytest.approx((200.0, 2.1, 0.1))
    assert row["rlnTomoTiltSeriesPixelSize"] == pytest.approx(2.5)      # from the header
    assert row["rlnMicrographOriginalPixelSize"] == pytest.approx(2.5)
    assert (row["rlnTomoSizeX"], row["rlnTomoSizeY"], row["rlnTomoSizeZ"]) == (32, 24, 40)
    assert row["rlnTomoHand"] == 1.0
    # RELION resolves the star file named in tomograms.star and reads the table named rlnTomoName.
    assert os.path.isabs(row["rlnTomoTiltSeriesStarFile"])
    assert row["rlnTomoName"] in starfile.read(row["rlnTomoTiltSeriesStarFile"], always_dict=True)


def test_tomograms_star_collects_series_exported_into_one_folder(interpolated):
    d, record = interpolated
    for name in ("TS_A", "TS_B", "TS_A"):
        r = run("export", "--input", d / "OUT.mrc", "--format", "relion5", "--output", d / "rel",
                "--name", name, "--tomo-size", "32,24,%d" % (10 if name == "TS_B" else 20))
        assert r.returncode == 0, r.stderr
    glob = starfile.read(d / "rel" / "tomograms.star")
    assert list(glob["rlnTomoName"]) == ["TS_B", "TS_A"]           # TS_A replaced, not doubled
    assert list(glob["rlnTomoSizeZ"]) == [10, 20]
    assert list(glob["rlnTomoTiltSeriesStarFile"]) == [str(d / "rel" / "TS_B.star"),
                                                      str(d / "rel" / "TS_A.star")]
    assert list(starfile.read(d / "rel" / "TS_B.star", always_dict=True)) == ["TS_B"]
    # A tomograms.star of another program (other columns) is never rewritten.
    relion_own = starfile.read(d / "rel" / "tomograms.star")
    relion_own["rlnEtomoDirectiveFile"] = "x.edf"
    starfile.write({"global": relion_own}, d / "rel" / "tomograms.star", overwrite=True)
    before = open(d / "rel" / "tomograms.star").read()
    r = run("export", "--input", d / "OUT.mrc", "--format", "relion5", "--output", d / "rel",
            "--name", "TS_C")
    assert r.returncode == 2 and "other columns" in r.stderr
    assert open(d / "rel" / "tomograms.star").read() == before
    assert not (d / "rel" / "TS_C.star").exists()


# ---------------------------------------------------------------------------
# STOPGAP reads what we write
# ---------------------------------------------------------------------------
def stopgap_rows(path, block="stopgap_wedgelist"):
    """The rows STOPGAP's reader (sg_toolbox/stopgap_star_read.m, single block
    named) takes: field names are lines starting with '_' (up to '#'); rows are
    the non-empty lines after (last field name line + 1), split on whitespace."""
    lines = open(path).read().split("\n")
    assert sum(l.startswith("data_") for l in lines) == 1
    assert [l for l in lines if l.startswith("data_")] == ["data_" + block]
    name_idx = [i + 1 for i, l in enumerate(lines) if l.startswith("_")]   # 1-based like MATLAB
    fields = [lines[i - 1].split("#")[0].strip()[1:] for i in name_idx]
    header = max(name_idx)
    rows = [lines[i - 1].split("#")[0].split() for i in range(1, len(lines) + 1)
            if lines[i - 1] != "" and i > header + 1]
    return fields, rows


def test_stopgap_reader_gets_every_row_and_known_fields(interpolated):
    d, record = interpolated
    write_ctf(d / "CTF.json", record)
    r = run("export", "--input", d / "OUT.mrc", "--ctf", d / "CTF.json", "--format", "stopgap",
            "--output", d / "sg", "--tomo-size", "32,24,40", "--tomo-num", 7, "--z-shift", 3)
    assert r.returncode == 0, r.stderr
    fields, rows = stopgap_rows(d / "sg" / "OUT_wedgelist.star")
    # STOPGAP refuses unknown fields (sg_get_wedgelist_fields.m); these are its names, in its order.
    assert fields == ["tomo_num", "pixelsize", "tomo_x", "tomo_y", "tomo_z", "z_shift", "tilt_angle",
                      "defocus", "exposure", "voltage", "amp_contrast", "cs"]
    wedge = starfile.read(d / "sg" / "OUT_wedgelist.star")
    assert len(rows) == len(wedge) == 21                        # 22 views, 1 excluded
    assert all(len(r) == len(fields) for r in rows)
    assert np.allclose(np.array(rows, dtype=float), wedge[fields].to_numpy(dtype=float))
    assert set(wedge["tomo_num"]) == {7} and set(wedge["z_shift"]) == {3.0}
    assert set(wedge["pixelsize"]) == {2.5} and set(wedge["voltage"]) == {300.0}


# ---------------------------------------------------------------------------
# Safety and bad input
# ---------------------------------------------------------------------------
def test_refuses_to_write_over_an_input(interpolated):
    """An output that is one of the inputs (here DIR/OUT.tlt is a link to the
    record) is refused before anything is written; the inputs are unchanged."""
    d, record = interpolated
    (d / "imod").mkdir()
    os.symlink(d / "OUT.json", d / "imod" / "OUT.tlt")
    before = open(d / "OUT.json").read()
    r = run("export", "--input", d / "OUT.mrc", "--format", "imod", "--output", d / "imod")
    assert r.returncode == 2
    assert "would overwrite the --record input" in r.stderr
    assert open(d / "OUT.json").read() == before
    assert sorted(os.listdir(d / "imod")) == ["OUT.tlt"]


@pytest.mark.parametrize("case", ["no_record", "ctf_count", "ctf_missing_used", "tomo_size",
                                  "record_count", "name"])
def test_bad_input_one_line(interpolated, case):
    d, record = interpolated
    args = ["export", "--input", d / "OUT.mrc", "--format", "relion5", "--output", d / "rel"]
    if case == "no_record":
        os.rename(d / "OUT.json", d / "moved.json")
        expect = "interpolation record not found"
    elif case == "ctf_count":
        json.dump([{"defocus_u": 20000.0}] * 7, open(d / "CTF.json", "w"))
        args += ["--ctf", d / "CTF.json"]
        expect = "7 CTF entries for a stack of 22 images"
    elif case == "ctf_missing_used":
        synthetic_order = next(e["acquisition_order"] for e in record if e["synthetic"])
        write_ctf(d / "CTF.json", record, skip_orders=(synthetic_order,))
        args += ["--ctf", d / "CTF.json"]
        expect = "no CTF for the tilt(s) at -8.25 degrees"
    elif case == "tomo_size":
        args += ["--tomo-size", "32,24"]
        expect = "three whole numbers"
    elif case == "name":
        args += ["--name", "../TS"]
        expect = "spaces or slashes"
    else:
        json.dump(record[:-1], open(d / "OUT.json", "w"))
        expect = "21 entries but the stack has 22 images"
    r = run(*args)
    assert r.returncode == 2, r.stdout
    assert expect in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (d / "rel" / "OUT.star").exists()


def test_experimental_only_needs_no_ctf_of_synthetic_tilts(interpolated):
    d, record = interpolated
    write_ctf(d / "CTF.json", [e for e in record if not e["synthetic"] and not e["excluded"]])
    r = run("export", "--input", d / "OUT.mrc", "--ctf", d / "CTF.json", "--format", "relion5",
            "--output", d / "rel", "--experimental-only")
    assert r.returncode == 0, r.stderr
    tilts = starfile.read(d / "rel" / "OUT.star")
    assert len(tilts) == 6 and set(tilts["cryotigerSynthetic"]) == {0}


def test_format_view_list_round_trips():
    for views in ([], [0], [0, 3, 4, 5], [2, 3, 7, 9, 10, 11]):
        assert parse_view_list(format_view_list(views)) == views
    assert format_view_list([0, 3, 4, 5]) == "1,4-6"


def test_not_estimated_ctf_entries(interpolated):
    """'cryotiger ctf' marks featureless tilts not estimated (defocus null): fine
    for a view no format uses (the excluded one), refused for a used tilt."""
    d, record = interpolated
    entries = []
    for e in record:
        u, v, a = expected_defocus(e["angle"])
        entries.append({"angle": e["angle"], "defocus_u": u, "defocus_v": v, "astig_angle": a,
                        "estimated": True})
    excluded = next(i for i, e in enumerate(record) if e["excluded"])
    entries[excluded].update(defocus_u=None, defocus_v=None, astig_angle=None, estimated=False)
    json.dump(entries, open(d / "CTF.json", "w"))
    r = run("export", "--input", d / "OUT.mrc", "--ctf", d / "CTF.json", "--format", "stopgap",
            "--output", d / "sg")
    assert r.returncode == 0, r.stderr
    assert len(starfile.read(d / "sg" / "OUT_wedgelist.star")) == 21
    entries[0].update(defocus_u=None, defocus_v=None, astig_angle=None, estimated=False)
    json.dump(entries, open(d / "CTF.json", "w"))
    r = run("export", "--input", d / "OUT.mrc", "--ctf", d / "CTF.json", "--format", "stopgap",
            "--output", d / "sg2")
    assert r.returncode == 2 and "no CTF for the tilt(s) at -9 degrees (absent or not estimated)" \
        in r.stderr


def test_work_folder_of_a_killed_export_is_removed(interpolated):
    """A temporary folder left by a killed export (its process is gone) is removed
    by the next export into the folder; one of a live process is kept."""
    d, record = interpolated
    dead = subprocess.Popen(["true"])
    dead.wait()
    (d / "sg").mkdir()
    stale = d / "sg" / f".OUT.{dead.pid}-abc123.export"
    live = d / "sg" / f".OUT.{os.getpid()}-def456.export"
    for folder in (stale, live):
        folder.mkdir()
        (folder / "OUT_wedgelist.star").write_text("partial")
    r = run("export", "--input", d / "OUT.mrc", "--format", "stopgap", "--output", d / "sg")
    assert r.returncode == 0, r.stderr
    assert not stale.exists() and live.exists()
    assert sorted(p for p in os.listdir(d / "sg") if not p.startswith(".")) == ["OUT_wedgelist.star"]


def test_chain_with_the_products_own_ctf_json(tmp_path):
    """simulate -> interpolate -> ctf (--plan) -> export: the CTF.json written by
    'cryotiger ctf' on OUT.mrc (stack order, no acquisition orders) reaches every
    format unchanged, and its synthetic flags agree with the export's."""
    d = tmp_path
    r = run("simulate", "--output", d / "TS.mrc", "--min-angle", -30, "--max-angle", 30, "--step", 10,
            "--defocus", 30000, "--dose", 3, "--phantom-shape", "16,128,128", "--pixel-size", 4)
    assert r.returncode == 0, r.stderr
    json.dump({"order": [6, 3, 2, 1, 4, 5, 7], "dose": [3.0] * 7}, open(d / "acq.json", "w"))
    r = run("interpolate", "--input", d / "TS.mrc", "--angles", d / "TS.tlt", "--output",
            d / "OUT.mrc", "--acquisition-json", d / "acq.json", "--quiet")
    assert r.returncode == 0, r.stderr
    r = run("ctf", "--input", d / "OUT.mrc", "--angles", d / "OUT.tlt", "--output", d / "CTF.json",
            "--plan", d / "OUT.json", "--quiet")
    assert r.returncode == 0, r.stderr
    ctf = json.load(open(d / "CTF.json"))
    assert len(ctf) == 13 and all(e.get("estimated", True) for e in ctf)
    for fmt in ("relion5", "imod"):
        r = run("export", "--input", d / "OUT.mrc", "--ctf", d / "CTF.json", "--format", fmt,
                "--output", d / "x")
        assert r.returncode == 0, r.stderr
    tilts = starfile.read(d / "x" / "OUT.star")
    assert list(tilts["rlnDefocusU"]) == pytest.approx([e["defocus_u"] for e in ctf], abs=0.01)
    assert list(tilts["rlnDefocusV"]) == pytest.approx([e["defocus_v"] for e in ctf], abs=0.01)
    assert list(tilts["rlnDefocusAngle"]) == pytest.approx([e["astig_angle"] for e in ctf], abs=0.01)
    assert list(tilts["cryotigerSynthetic"]) == [int(e["synthetic"]) for e in ctf]
    # dose-symmetric order 6,3,2,1,4,5,7 with 3 e/A^2 each: -30 deg had 15 e/A^2 before it
    assert tilts["rlnMicrographPreExposure"][0] == pytest.approx(15.0)
    imod = read_imod_defocus(str(d / "x" / "OUT.defocus"))
    assert imod["defocus_u"] == pytest.approx([e["defocus_u"] for e in ctf], abs=0.5)


def test_combined_files_for_several_series(interpolated):
    """One tomograms.star / one STOPGAP wedge list for several series (what the
    Scipion protocol writes at the top of its folder): rows in order, synthetic
    rows renumbered, tomo_num and names kept unique."""
    from cryotiger_scipion.engine.export import (combine_relion_tomograms,
                                                 combine_stopgap_wedgelists)
    d, record = interpolated
    for num, name in ((1, "TS_A"), (2, "TS_B")):
        for fmt in ("relion5", "stopgap"):
            r = run("export", "--input", d / "OUT.mrc", "--format", fmt, "--output", d / name,
                    "--name", name, "--tomo-num", num, *(["--experimental-only"] if num == 2 else []))
            assert r.returncode == 0, r.stderr
    n = combine_stopgap_wedgelists([str(d / "TS_A" / "TS_A_wedgelist.star"),
                                    str(d / "TS_B" / "TS_B_wedgelist.star")], str(d / "all.star"))
    assert n == 21 + 6
    _, rows = stopgap_rows(d / "all.star")
    assert len(rows) == 27
    wedge = starfile.read(d / "all.star")
    assert list(wedge["tomo_num"]) == [1] * 21 + [2] * 6
    assert read_stopgap_synthetic_rows(str(d / "all.star")) == \
        read_stopgap_synthetic_rows(str(d / "TS_A" / "TS_A_wedgelist.star"))   # TS_B has none
    assert combine_relion_tomograms([str(d / "TS_A" / "tomograms.star"),
                                     str(d / "TS_B" / "tomograms.star")], str(d / "tomos.star")) == 2
    glob = starfile.read(d / "tomos.star")
    assert list(glob["rlnTomoName"]) == ["TS_A", "TS_B"]
    assert glob["rlnTomoSizeX"].dtype.kind == "i"
    with pytest.raises(Exception, match="tomo_num 1 is used by another series"):
        combine_stopgap_wedgelists([str(d / "TS_A" / "TS_A_wedgelist.star")] * 2, str(d / "x.star"))
