"""Gctf (Zhang, "Gctf: Real-time CTF determination and correction", J. Struct.
Biol. 193, 2016; GPU) as a CTF back end for tilt series.

Gctf works on micrographs, so each tilt is written as its own MRC in a work
folder and Gctf is run once on the list.  For every ``tilt_NNN.mrc`` Gctf
writes ``tilt_NNN_gctf.log`` (and a diagnostic ``tilt_NNN.ctf``); the log
holds the table

    Defocus_U   Defocus_V       Angle         CCC
    23897.17    23554.86       43.23    0.094527  Final Values

(with a phase-shift column before CCC when phase shifts are searched) and,
with ``--do_EPA 1``, ``Resolution limit estimated by EPA: RES_LIMIT 3.731``.
Failures are never swallowed: a non-zero exit or a missing result raises
``CryoTigerError`` with the command line and the tail of Gctf's output.

Units: Angstrom (defocus, pixel size, resolution), degrees (angles), kV, mm.
The binary is located by the caller (``find_gctf``: an explicit path, the
CRYOTIGER_GCTF_BIN variable, scipion-em-gctf's GCTF_HOME, then PATH).
"""
from __future__ import annotations

import math
import os
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from typing import List, Optional, Sequence


from . import CryoTigerError, InputError
from .binaries import is_executable, search_executable
from .ctf import CtfResult, normalise_astigmatism

GCTF_NAMES = ("Gctf", "gctf", "Gctf-v1.18_sm_30_cu10.1_x86_64", "Gctf-v1.06_sm_30_cu8.0_x86_64")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


class GctfError(CryoTigerError):
    """Gctf failed or wrote no usable result (the message holds the command line
    and the tail of Gctf's output)."""


def find_gctf(explicit: Optional[str] = None) -> str:
    """Path of the Gctf binary: ``explicit``, else $CRYOTIGER_GCTF_BIN, else
    $GCTF_HOME/bin/Gctf*, else Gctf on PATH.

    Raises:
        InputError: when ``explicit`` or $CRYOTIGER_GCTF_BIN names a file that
            is missing or not executable, or when no binary is found (the
            message names CRYOTIGER_GCTF_BIN).
    """
    for label, path in (("--gctf", explicit), ("CRYOTIGER_GCTF_BIN", os.environ.get("CRYOTIGER_GCTF_BIN"))):
        if path:
            if is_executable(path):
                return path
            raise InputError(f"Gctf binary {path} (from {label}) does not exist or is not "
                             "executable; set CRYOTIGER_GCTF_BIN to the Gctf executable or use "
                             "--backend builtin")
    home = os.environ.get("GCTF_HOME")
    found = search_executable([os.path.join(home, "bin"), home] if home else [], GCTF_NAMES)
    if found:
        return found
    raise InputError("Gctf binary not found; set CRYOTIGER_GCTF_BIN=/path/to/Gctf (or GCTF_HOME "
                     "as for scipion-em-gctf), or use the built-in estimator (--backend builtin)")


@dataclass
class GctfOptions:
    """Gctf arguments (Angstrom, kV, mm, micrometres for the detector pixel).

    ``apix`` pixel size (A); ``kv``; ``cs`` (mm); ``ac`` amplitude contrast
    (fraction); ``def_l`` / ``def_h`` / ``def_s`` defocus search range and step
    (A); ``astm`` expected astigmatism (A); ``res_l`` / ``res_h`` fitting band
    (A); ``boxsize`` (px); ``gid`` GPU; ``do_epa`` EPA resolution estimate;
    ``extra`` more Gctf options, passed as given."""
    apix: float
    kv: float = 300.0
    cs: float = 2.7
    ac: float = 0.07
    dstep: float = 14.0              # detector pixel size, um (Gctf's default)
    def_l: float = 5000.0
    def_h: float = 80000.0
    def_s: float = 500.0
    astm: float = 1000.0             # expected astigmatism, A
    res_l: float = 50.0
    res_h: float = 10.0
    boxsize: int = 512
    gid: int = 0
    do_epa: bool = True
    extra: List[str] = field(default_factory=list)

    @classmethod
    def from_fit_options(cls, options, scope, gpu_id: int = 0) -> "GctfOptions":
        """From engine.ctf FitOptions / Microscope: the same search range, band,
        pixel size and optics; expected astigmatism min(astig_max, 1000 A); box
        ``tile_size`` (default 512); ``gpu_id`` as Gctf's --gid."""
        box = int(options.tile_size or 512)
        return cls(apix=scope.pixel_size, kv=scope.voltage, cs=scope.cs, ac=scope.amp_contrast,
                   def_l=options.defocus_min, def_h=options.defocus_max,
                   def_s=options.defocus_step, astm=min(options.astig_max, 1000.0),
                   res_l=options.res_min, res_h=options.resolved_res_max(scope.pixel_size),
                   boxsize=box, gid=gpu_id)

    def arguments(self) -> List[str]:
        """Gctf's command-line options for these settings (Angstrom, kV, mm;
        ``--ctfstar NONE``), then ``extra`` as given."""
        args = ["--apix", f"{self.apix:.4f}", "--kV", f"{self.kv:g}", "--cs", f"{self.cs:g}",
                "--ac", f"{self.ac:g}", "--dstep", f"{self.dstep:g}",
                "--defL", f"{self.def_l:.1f}", "--defH", f"{self.def_h:.1f}",
                "--defS", f"{self.def_s:.1f}", "--astm", f"{self.astm:.1f}",
                "--resL", f"{self.res_l:.2f}", "--resH", f"{self.res_h:.2f}",
                "--boxsize", str(int(self.boxsize)), "--do_EPA", "1" if self.do_epa else "0",
                "--gid", str(int(self.gid)), "--ctfstar", "NONE"]
        return args + list(self.extra)


def build_command(binary: str, options: GctfOptions, micrographs: Sequence[str]) -> List[str]:
    """The Gctf command line (a list for subprocess) for these MRC files.

    Raises:
        InputError: when ``micrographs`` is empty.
    """
    if not micrographs:
        raise InputError("no micrographs to give Gctf")
    return [binary] + options.arguments() + [str(m) for m in micrographs]


def gctf_log_path(micrograph: str) -> str:
    """Gctf's per-micrograph log: <stem>_gctf.log beside the micrograph."""
    return os.path.splitext(micrograph)[0] + "_gctf.log"


def parse_gctf_log(text: str, source: str = "Gctf log") -> dict:
    """Parse a Gctf log: the last 'Final Values' line and the EPA resolution.

    Returns dict(defocus_u, defocus_v, astig_angle, ccc, phase_shift, resolution);
    defocus in Angstrom (U >= V after normalisation), angles in degrees,
    resolution in Angstrom (NaN when Gctf did not report one); ``ccc`` Gctf's
    cross-correlation score; ``phase_shift`` in degrees (0 without the column).
    ``text``: the log's content (ANSI colour codes are ignored); ``source``:
    its name in messages.

    Raises:
        GctfError: when the log has no 'Final Values' line.
    """
    text = _ANSI.sub("", text)
    final = None
    resolution = float("nan")
    for line in text.splitlines():
        if "Final Values" in line:
            nums = re.findall(_NUM, line.split("Final")[0])
            if len(nums) >= 4:
                final = [float(v) for v in nums]
        m = re.search(r"RES_LIMIT\s+(" + _NUM + ")", line)
        if m:
            resolution = float(m.group(1))
        elif "Resolution limit estimated by EPA" in line:
            nums = re.findall(_NUM, line.split(":", 1)[-1])
            if nums:
                resolution = float(nums[-1])
    if final is None:
        raise GctfError(f"{source}: no 'Final Values' line; Gctf did not finish this image")
    du, dv, ang = final[0], final[1], final[2]
    if len(final) >= 5:
        phase_shift, ccc = final[3], final[4]
    else:
        phase_shift, ccc = 0.0, final[3]
    du, dv, ang = normalise_astigmatism(du, dv, ang)
    return {"defocus_u": du, "defocus_v": dv, "astig_angle": ang, "ccc": ccc,
            "phase_shift": phase_shift, "resolution": resolution}


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(_ANSI.sub("", text).rstrip().splitlines()[-lines:])


def run_gctf(binary: str, options: GctfOptions, micrographs: Sequence[str], cwd: str,
             log_path: Optional[str] = None, timeout: Optional[float] = None) -> List[dict]:
    """Run Gctf on ``micrographs`` (MRC paths) and parse one result per file.

    ``micrographs`` relative to ``cwd`` (Gctf's working folder) or absolute;
    ``log_path``: where to save the command and Gctf's output; ``timeout`` in
    seconds (None: none).  Returns ``parse_gctf_log``'s dict per micrograph, in order.

    Raises:
        GctfError: with the command and the tail of Gctf's output when Gctf
            cannot start, times out, exits non-zero, or a micrograph has no
            log or no result.
        InputError: when ``micrographs`` is empty (``build_command``).
    """
    cmd = build_command(binary, options, micrographs)
    cmd_text = " ".join(shlex.quote(c) for c in cmd)
    try:
        proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, errors="replace", timeout=timeout)
    except OSError as exc:
        raise GctfError(f"could not start Gctf ({exc}); command: {cmd_text}; check "
                        "CRYOTIGER_GCTF_BIN and that its CUDA libraries are installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise GctfError(f"Gctf did not finish in {timeout} s; command: {cmd_text}") from exc
    output = proc.stdout or ""
    if log_path:
        with open(log_path, "w") as f:
            f.write(f"$ {cmd_text}\n{output}")
    if proc.returncode != 0:
        raise GctfError(f"Gctf failed with exit status {proc.returncode}; command: {cmd_text}\n"
                        f"last lines of its output:\n{_tail(output)}")
    results = []
    for mic in micrographs:
        log = gctf_log_path(os.path.join(cwd, mic) if not os.path.isabs(mic) else mic)
        if not os.path.exists(log):
            raise GctfError(f"Gctf wrote no log for {mic} ({log} missing); command: {cmd_text}\n"
                            f"last lines of its output:\n{_tail(output)}")
        with open(log, errors="replace") as f:
            text = f.read()
        try:
            results.append(parse_gctf_log(text, source=log))
        except GctfError as exc:
            raise GctfError(f"{exc}; command: {cmd_text}\nlast lines of {log}:\n{_tail(text)}") from None
    return results


def run_gctf_stack(binary: str, stack_path: str, angles: Sequence[float], options: GctfOptions,
                   work_dir: str, progress: bool = True) -> List[CtfResult]:
    """Write each tilt of ``stack_path`` as work_dir/tilt_NNN.mrc, run Gctf on
    all of them, return one CtfResult per tilt in stack order.

    ``angles``: tilt angle (degrees) per image; ``options.boxsize`` is lowered
    (in place) to fit the images.  The CtfResult's ``fit_score`` is Gctf's CCC
    and ``resolution`` its EPA limit (A, NaN when not reported).

    Raises:
        InputError: when the stack cannot be read (``formats.mrc.read_stack``) or the
            angle count differs from the image count.
        GctfError: when Gctf fails (``run_gctf``).
    """
    from .formats.mrc import read_stack, write_stack
    from .progress import Progress
    data, _ = read_stack(stack_path)
    if len(angles) != data.shape[0]:
        raise InputError(f"{stack_path}: {data.shape[0]} images but {len(angles)} angles")
    box = min(int(options.boxsize), min(data.shape[1:]))
    options.boxsize = box - box % 2
    os.makedirs(work_dir, exist_ok=True)
    prog = Progress(data.shape[0], "gctf", unit="tilt", enabled=progress)
    names = []
    for i in range(data.shape[0]):
        name = f"tilt_{i + 1:03d}.mrc"
        for stale in (gctf_log_path(os.path.join(work_dir, name)),):
            if os.path.exists(stale):
                os.remove(stale)
        write_stack(os.path.join(work_dir, name), data[i], options.apix)
        names.append(name)
    prog.log(f"{len(names)} tilts written to {work_dir}; running Gctf on GPU {options.gid}")
    parsed = run_gctf(binary, options, names, cwd=work_dir,
                      log_path=os.path.join(work_dir, "gctf_run.log"))
    out = []
    for a, r in zip(angles, parsed):
        res = r["resolution"]
        out.append(CtfResult(defocus_u=r["defocus_u"], defocus_v=r["defocus_v"],
                             astig_angle=r["astig_angle"], fit_score=r["ccc"],
                             resolution=res if math.isfinite(res) else float("nan"),
                             angle=float(a)))
        prog.update(1, detail=f"tilt {float(a):+.1f}: defocus {out[-1].defocus / 1e4:.3f} um")
    return out


__all__ = ["find_gctf", "GctfOptions", "build_command", "parse_gctf_log", "run_gctf",
           "run_gctf_stack", "gctf_log_path", "GctfError"]
