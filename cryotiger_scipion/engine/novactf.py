"""The novaCTF binary (Turonova, Schur, Wan & Briggs, "Efficient 3D-CTF correction
for cryo-electron tomography using NovaCTF improves subtomogram averaging
resolution to 3.4 A", J. Struct. Biol. 199, 2017) as a reconstruction back end,
without IMOD: its defocus file is written here and the stack re-orientation
(IMOD ``clip flipyz``) and the final trim (``trimvol -rx``) are done in numpy.

Steps (run in a working folder; see docs/reconstruct.md):
  1. ``-Algorithm defocus``: one defocus file per plane (3D correction only);
  2. ``-Algorithm ctfCorrection`` per plane: phase flip / multiplication;
  3. Y/Z swap in numpy, then ``-Algorithm filterProjections -StackOrientation xz``;
  4. ``-Algorithm 3dctf`` over all planes; its (y, z, x) output is turned
     into (z, y, x) with ``a.transpose(1, 0, 2)[::-1]``.

novaCTF reports a misspelt parameter only on stdout ("Ignoring following
parameter") and exits 0, so every run's output is checked as well as its exit
code; failures raise :class:`NovaCtfError` with the command and the log tail.
Units: novaCTF takes nm (pixel size, defocus, defocus step); this module takes
Angstrom like the rest of the engine.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from typing import List, Optional, Sequence

import numpy as np

from . import CryoTigerError, InputError
from .binaries import is_executable, search_executable

NOVACTF_BIN = "CRYOTIGER_NOVACTF_BIN"
NOVACTF_HOME = "NOVACTF_HOME"

# Lines of novaCTF's stdout that mean the run did not do what was asked.
_BAD_OUTPUT = ("Ignoring following parameter", "Unknown type", "Missing value",
               "Could not open", "has to be set", "does not correspond", "Following flag is unknown",
               "has to be specified")


class NovaCtfError(CryoTigerError):
    """novaCTF failed (exit code or an error on its output); the message holds the
    command, the working folder and the tail of novaCTF's output."""


def find_novactf(explicit: Optional[str] = None) -> str:
    """The novaCTF executable: ``explicit``, else $CRYOTIGER_NOVACTF_BIN, else
    $NOVACTF_HOME/novaCTF (or bin/novaCTF), else ``novaCTF`` on PATH.

    Raises:
        InputError: when the path given (``explicit`` or $CRYOTIGER_NOVACTF_BIN)
            is not executable, or no novaCTF is found.
    """
    given = explicit or os.environ.get(NOVACTF_BIN)
    home = os.environ.get(NOVACTF_HOME)
    if given:
        if is_executable(given):
            return given
        where = given
    else:
        found = search_executable([home, os.path.join(home, "bin")] if home else [], ["novaCTF"])
        if found:
            return found
        where = os.path.join(home, "novaCTF") if home else "(none given)"
    raise InputError(f"novaCTF binary not found or not executable: {where}; build novaCTF "
                     f"(github.com/turonova/novaCTF) and give --novactf PATH or set {NOVACTF_BIN} "
                     f"(or {NOVACTF_HOME}), or use --backend builtin")


def run_novactf(binary: str, args: Sequence[str], cwd: str, log_path: Optional[str] = None) -> str:
    """Run one novaCTF step; returns its output (stdout and stderr together).

    ``args``: novaCTF's arguments (converted with str); ``cwd``: working folder;
    ``log_path``: a log the command line, output and exit code are appended to.

    Raises:
        NovaCtfError: on a non-zero exit code or an error message on its output
            (``_BAD_OUTPUT``: novaCTF exits 0 after ignoring a parameter).
        OSError: when the binary cannot be started.
    """
    cmd = [binary] + [str(a) for a in args]
    proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace")
    out = proc.stdout or ""
    if log_path:
        with open(log_path, "a") as f:
            f.write("$ " + " ".join(cmd) + "\n" + out + f"[exit {proc.returncode}]\n")
    bad = [line for line in out.splitlines() if any(b in line for b in _BAD_OUTPUT)]
    if proc.returncode != 0 or bad:
        tail = "\n".join(out.strip().splitlines()[-15:])
        why = (f"exit code {proc.returncode}" if proc.returncode != 0 else
               f"it reported: {bad[0].strip()}")
        raise NovaCtfError(f"novaCTF failed ({why}) in {cwd}\ncommand: {' '.join(cmd)}\n"
                           f"output (last lines):\n{tail}")
    return out


def write_defocus_file(path: str, angles: Sequence[float], defocus_u: Sequence[float],
                       defocus_v: Sequence[float], astig_angle: Sequence[float],
                       astigmatism: bool = True) -> None:
    """IMOD ctfphaseflip defocus file, one row per view in stack order, nm.

    ``astigmatism``: version 3 with flag 1 (view, view, angle, angle, defocus1,
    defocus2, astigmatism angle); else version 2 (mean defocus, a trailing 2
    on the first row only).  Defocus in Angstrom (underfocus > 0), written in
    nm; ``angles`` and ``astig_angle`` in degrees, one per view.  The format
    is IMOD's ctfphaseflip defocus file (IMOD documentation, "ctfphaseflip")."""
    lines = []
    if astigmatism:
        lines.append("1 0 0.0 0.0 0.0 3")
    for i, a in enumerate(angles):
        u, v = float(defocus_u[i]) / 10.0, float(defocus_v[i]) / 10.0
        if astigmatism:
            lines.append(f"{i + 1} {i + 1} {a:.2f} {a:.2f} {u:.1f} {v:.1f} {float(astig_angle[i]):.2f}")
        else:
            row = f"{i + 1} {i + 1} {a:.2f} {a:.2f} {0.5 * (u + v):.1f}"
            lines.append(row + (" 2" if i == 0 else ""))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def _read_mrc(path: str) -> np.ndarray:
    import mrcfile
    with mrcfile.open(path, permissive=True) as m:
        return np.asarray(m.data, dtype=np.float32).copy()


def _write_mrc(path: str, data: np.ndarray, pixel_size: float) -> None:
    import mrcfile
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(np.ascontiguousarray(data, dtype=np.float32))
        m.voxel_size = pixel_size


def reconstruct_novactf(binary: str, stack: np.ndarray, angles: Sequence[float], thickness: int,
                        pixel_size: float, workdir: str, ctf=None, correction: str = "none",
                        ctf_mode: str = "phaseflip", defocus_step: Optional[float] = None,
                        radial=(0.35, 0.05), correct_astigmatism: bool = True,
                        sirt_like: int = 0, progress=None) -> np.ndarray:
    """Reconstruct with novaCTF.  ``stack`` (n, y, x) float32 (already binned),
    ``angles`` degrees, ``thickness`` pixels, ``pixel_size`` Angstrom, ``ctf``
    an engine.reconstruct.CtfSettings for the same tilts.  Returns the volume
    (z, y, x) float32 (tilt axis y), (thickness, y, x).

    ``correction``: 'none', 'phaseflip' (2D) or '3d' (novaCTF's planes
    ``defocus_step`` Angstrom apart; default
    ``engine.reconstruct.auto_defocus_step``); ``ctf_mode``: 'phaseflip' or
    'multiply'; ``radial``: (cutoff cycles/pixel, falloff) as IMOD's RADIAL;
    ``correct_astigmatism``: use U, V and the angle (else the mean defocus);
    ``sirt_like``: novaCTF's FakeSIRTiterations (0: off); ``workdir``: an
    existing folder for novaCTF's files; ``progress``: an
    engine.progress.Progress.

    Raises:
        InputError: for an unknown ``correction``, a correction without
            ``ctf``, or images of odd width (novaCTF reconstructs them wrongly).
        NovaCtfError: when a novaCTF step fails, writes no defocus files, or
            writes a volume of an unexpected shape.
    """
    from .reconstruct import CORRECTIONS, auto_defocus_step
    if correction not in CORRECTIONS:
        raise InputError(f"unknown CTF correction '{correction}'; use one of {', '.join(CORRECTIONS)}")
    if correction != "none" and ctf is None:
        raise InputError(f"CTF correction '{correction}' needs the per-tilt defocus (--ctf CTF.json)")
    n, ny, nx = stack.shape
    if nx % 2:
        # Checked against the built-in back end: novaCTF (HEAD 4f134c7) returns a
        # wrong volume (correlation ~0.3) for images of odd width.
        raise InputError(f"novaCTF needs images of even width; these are {nx} pixels wide "
                         "(after binning): crop the stack by one column, change the binning, "
                         "or use --backend builtin")
    px_nm = pixel_size / 10.0
    log = os.path.join(workdir, "novactf.log")
    _write_mrc(os.path.join(workdir, "ts.mrc"), stack, pixel_size)
    with open(os.path.join(workdir, "ts.tlt"), "w") as f:
        f.write("".join(f"{float(a):.2f}\n" for a in angles))
    geometry = ["-FULLIMAGE", f"{nx},{ny}", "-THICKNESS", int(thickness), "-TILTFILE", "ts.tlt",
                "-SHIFT", "0.0,0.0"]
    corr_type = "phaseflip" if ctf_mode == "phaseflip" else "multiplication"
    astig = "1" if correct_astigmatism else "0"
    defocus_files: List[str] = []
    if correction != "none":
        write_defocus_file(os.path.join(workdir, "ctf.defocus"), angles, ctf.defocus_u, ctf.defocus_v,
                           ctf.astig_angle, astigmatism=correct_astigmatism)
        if correction == "3d":
            step = defocus_step or auto_defocus_step(pixel_size, ctf.voltage, radial[0])
            run_novactf(binary, ["-Algorithm", "defocus", "-InputProjections", "ts.mrc"] + geometry +
                        ["-CorrectionType", corr_type, "-DefocusFileFormat", "imod",
                         "-CorrectAstigmatism", astig, "-DefocusFile", "ctf.defocus",
                         "-PixelSize", f"{px_nm:g}", "-DefocusStep", f"{step / 10.0:g}"], workdir, log)
            k = 0
            while os.path.exists(os.path.join(workdir, f"ctf.defocus_{k}")):
                defocus_files.append(f"ctf.defocus_{k}")
                k += 1
            if not defocus_files:
                raise NovaCtfError(f"novaCTF -Algorithm defocus wrote no ctf.defocus_N files in {workdir}")
        else:
            defocus_files = ["ctf.defocus"]
    n_planes = max(1, len(defocus_files))
    if progress is not None:
        progress.total = n_planes + 1
        progress.log(f"novaCTF: {n_planes} plane(s), CTF correction {correction}")
    for k in range(n_planes):
        if correction != "none":
            run_novactf(binary, ["-Algorithm", "ctfCorrection", "-InputProjections", "ts.mrc",
                                 "-DefocusFile", defocus_files[k], "-OutputFile", f"corr.mrc_{k}",
                                 "-TILTFILE", "ts.tlt", "-CorrectionType", corr_type,
                                 "-DefocusFileFormat", "imod", "-CorrectAstigmatism", astig,
                                 "-PixelSize", f"{px_nm:g}", "-AmplitudeContrast", f"{ctf.amp_contrast:g}",
                                 "-Cs", f"{ctf.cs:g}", "-Volt", f"{ctf.voltage:g}"], workdir, log)
            corrected = _read_mrc(os.path.join(workdir, f"corr.mrc_{k}"))
            os.remove(os.path.join(workdir, f"corr.mrc_{k}"))
        else:
            corrected = stack
        if corrected.ndim == 2:
            corrected = corrected[None]
        # IMOD `clip flipyz`: (n, y, x) -> (y, n, x) on [z, y, x] arrays.
        _write_mrc(os.path.join(workdir, f"flip.mrc_{k}"), corrected.transpose(1, 0, 2), pixel_size)
        # 3dctf reads filter.mrc_0 .. _{N-1} with -Use3DCTF 1, else filter.mrc itself.
        filtered = f"filter.mrc_{k}" if correction == "3d" else "filter.mrc"
        run_novactf(binary, ["-Algorithm", "filterProjections", "-InputProjections", f"flip.mrc_{k}",
                             "-OutputFile", filtered, "-TILTFILE", "ts.tlt",
                             "-StackOrientation", "xz", "-RADIAL", f"{radial[0]:g},{radial[1]:g}"]
                    + (["-FakeSIRTiterations", int(sirt_like)] if sirt_like else []), workdir, log)
        os.remove(os.path.join(workdir, f"flip.mrc_{k}"))
        if progress is not None:
            progress.update(1, f"plane {k + 1}/{n_planes} corrected and filtered")
    run_novactf(binary, ["-Algorithm", "3dctf", "-InputProjections", "filter.mrc", "-OutputFile",
                         "rec.mrc"] + geometry +
                ["-PixelSize", f"{px_nm:g}", "-NumberOfInputStacks", n_planes,
                 "-Use3DCTF", "1" if correction == "3d" else "0"], workdir, log)
    raw = _read_mrc(os.path.join(workdir, "rec.mrc"))
    if progress is not None:
        progress.update(1, "back-projected")
    # IMOD `trimvol -rx` (clip rotx): (y, z, x) -> (z, y, x).
    vol = raw.transpose(1, 0, 2)[::-1]
    if vol.shape != (int(thickness), ny, nx):
        raise NovaCtfError(f"novaCTF wrote a volume of {raw.shape} (z, y, x as stored); expected "
                           f"{ny} x {thickness} x {nx}; see {log}")
    return np.ascontiguousarray(vol)


def reconstruct_file_novactf(binary: str, input_path: str, angles_path: str, output_path: str,
                             thickness: int, ctf_path: Optional[str] = None, correction: str = "none",
                             exclude_synthetic: Optional[str] = None, exclude: Sequence[int] = (),
                             pixel_size: Optional[float] = None, voltage: float = 300.0,
                             cs: float = 2.7, amp_contrast: float = 0.07, binning: int = 1,
                             progress: bool = True, keep_work: bool = False, label: str = "",
                             xf: Optional[np.ndarray] = None, **options) -> dict:
    """File-level novaCTF reconstruction with the arguments of
    :func:`engine.reconstruct.reconstruct_file`.  The working folder is made
    beside the output and removed on success unless ``keep_work`` (kept on
    failure).  ``binning``: integer; ``options``: more arguments of
    :func:`reconstruct_novactf` (ctf_mode, defocus_step, radial,
    correct_astigmatism, sirt_like).

    Returns {'output', 'shape' (z, y, x), 'pixel_size' (A, binned), 'views'
    (0-based kept), 'correction', 'workdir' (None unless kept)}.

    Raises:
        InputError: when the output would overwrite the input, ``binning`` or
            ``thickness`` is below 1, the angles or the stack cannot be read or
            do not match, no pixel size is known, a kept view holds NaN/inf, the
            exclusions or ``xf`` are invalid (``reconstruct.kept_views``), the
            CTF file is missing or invalid for a correction
            (``reconstruct.views_ctf``), or as :func:`reconstruct_novactf`.
        NovaCtfError: when novaCTF fails (:func:`reconstruct_novactf`).
    """
    from .align import Aligner
    from .formats.mrc import check_finite_views, open_stack, write_volume
    from .formats.tlt import read_angles
    from .progress import Progress
    from .reconstruct import bin_image, kept_views, stack_data_checked, views_ctf

    if os.path.abspath(output_path) == os.path.abspath(input_path):
        raise InputError(f"{output_path}: the output would overwrite the input; choose another name")
    if int(binning) < 1:
        raise InputError(f"binning {binning}: give an integer >= 1")
    if thickness is None or int(thickness) < 1:
        raise InputError(f"thickness {thickness}: give the tomogram thickness in pixels (>= 1)")
    angles = read_angles(angles_path)
    label = label or os.path.basename(input_path)
    with open_stack(input_path) as m:
        n = m.data.shape[0] if m.data.ndim == 3 else 1
        keep = kept_views(n, exclude, exclude_synthetic, xf)
        data, px = stack_data_checked(m, angles, input_path, angles_path, pixel_size, keep)
        check_finite_views(data, keep, input_path)          # before any work
        ctf = views_ctf(ctf_path, correction, n, angles, keep, voltage, cs, amp_contrast)
        b = int(binning)
        aligner = Aligner(xf, data.shape[1:], label=label, views=keep)

        def image(i):
            return bin_image(aligner(np.asarray(data[i], dtype=np.float32), i), b)
        stack = np.stack([image(i) for i in keep])
    nz = max(1, int(round(int(thickness) / b)))
    folder = os.path.dirname(os.path.abspath(output_path)) or "."
    os.makedirs(folder, exist_ok=True)
    from .outputs import active_temp_folder
    workdir = active_temp_folder(output_path, keep=keep_work)
    prog = Progress(1, label, unit="step", enabled=progress)
    try:
        vol = reconstruct_novactf(binary, stack, angles[keep], nz, px * b, workdir, ctf=ctf,
                                  correction=correction, progress=prog, **options)
    except BaseException:
        if progress:
            prog.log(f"novaCTF working folder kept for inspection: {workdir}")
        raise
    write_volume(output_path, vol, px * b)
    if not keep_work:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"output": output_path, "shape": tuple(int(v) for v in vol.shape), "pixel_size": px * b,
            "views": keep, "correction": correction, "workdir": workdir if keep_work else None}
