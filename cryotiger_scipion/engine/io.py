"""Tilt-series files: MRC stacks, tilt-angle files, SerialEM .mdoc.

Axis order of every array is (tilt, y, x); angles in degrees; pixel sizes in
Angstrom.  Writers are atomic: data go to a hidden temporary file in the
destination folder that is renamed into place only when complete, so a crash
never leaves a half-written file under the final name.
"""
from __future__ import annotations

import contextlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Sequence

import mrcfile
import numpy as np

from . import InputError

STACK_SUFFIXES = (".mrc", ".mrcs", ".st", ".ali", ".rec", ".map")


# ----------------------------------------------------------------------------
# MRC
# ----------------------------------------------------------------------------
def _check_mrc(path: str) -> None:
    if not os.path.exists(path):
        raise InputError(f"{path}: file not found; give the path of an MRC stack")
    try:
        mrcfile.validate  # noqa: B018 (exists in all versions we support)
        with mrcfile.open(path, mode="r", permissive=True, header_only=True) as m:
            header = m.header
            nx, ny, nz = int(header.nx), int(header.ny), int(header.nz)
            mode = int(header.mode)
    except Exception as exc:  # mrcfile raises ValueError / OSError variants
        raise InputError(f"{path}: not a readable MRC file ({exc}); "
                         "give an MRC stack (.mrc/.mrcs/.st/.ali)") from exc
    dtype_sizes = {0: 1, 1: 2, 2: 4, 4: 8, 6: 2, 12: 2}
    if mode not in dtype_sizes:
        raise InputError(f"{path}: MRC mode {mode} is not supported; "
                         "convert the stack to mode 2 (float32) or 1/6 (16-bit)")
    expected = nx * ny * nz * dtype_sizes[mode]
    size = os.path.getsize(path)
    header_bytes = 1024 + int(header.nsymbt)
    if size < header_bytes + expected:
        raise InputError(
            f"{path}: truncated MRC file: the header announces {nz} images of "
            f"{nx}x{ny} ({header_bytes + expected} bytes) but the file has {size} bytes; "
            "copy or export the stack again")


def open_stack(path: str):
    """Open an MRC stack read-only and memory-mapped (no data read yet).

    Returns the mrcfile object; ``.data`` is (n, y, x).  A single 2D image is
    returned as a stack of one.  Use as a context manager.
    """
    _check_mrc(path)
    return mrcfile.mmap(path, mode="r", permissive=True)


def stack_shape(path: str) -> tuple:
    with open_stack(path) as m:
        data = m.data
        return (1,) + data.shape if data.ndim == 2 else tuple(data.shape)


def read_pixel_size(path: str) -> float:
    """Pixel size (Angstrom) from the header's voxel size in x; 0 if unset."""
    _check_mrc(path)
    with mrcfile.open(path, mode="r", permissive=True, header_only=True) as m:
        return float(m.voxel_size.x)


def read_stack(path: str, check_finite: bool = True) -> tuple:
    """Read a whole stack as float32 (n, y, x) and its pixel size (A)."""
    with open_stack(path) as m:
        data = np.asarray(m.data, dtype=np.float32)
        pixel_size = float(m.voxel_size.x)
    if data.ndim == 2:
        data = data[None]
    if check_finite:
        check_finite_array(data, path)
    return np.array(data, copy=True), pixel_size


def check_finite_array(data: np.ndarray, name: str) -> None:
    if not np.all(np.isfinite(data)):
        bad = np.flatnonzero(~np.isfinite(data.reshape(data.shape[0], -1)).all(axis=1))
        raise InputError(
            f"{name}: NaN or infinite values in image(s) {', '.join(str(i + 1) for i in bad[:10])}"
            f"{' ...' if len(bad) > 10 else ''}; fix or exclude those images "
            "(e.g. re-export the stack, or replace bad pixels) before interpolating")


@contextlib.contextmanager
def atomic_path(final_path: str) -> Iterator[str]:
    """Yield a temporary path beside ``final_path``; rename on success, delete on error."""
    folder = os.path.dirname(os.path.abspath(final_path)) or "."
    os.makedirs(folder, exist_ok=True)
    base = os.path.basename(final_path)
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".part", dir=folder)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
    try:
        yield tmp
        os.replace(tmp, final_path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


class StackWriter:
    """Write an (n, y, x) float32 MRC stack slice by slice, atomically.

    >>> with StackWriter("out.mrcs", n, (ny, nx), pixel_size=2.1) as w:
    ...     w[i] = image
    """

    def __init__(self, path: str, n: int, shape_yx: Sequence[int], pixel_size: float,
                 is_volume: bool = False):
        self.path = path
        self.n = int(n)
        self.shape = (self.n, int(shape_yx[0]), int(shape_yx[1]))
        self.pixel_size = float(pixel_size)
        self.is_volume = is_volume
        self._ctx = None
        self._mrc = None
        self.written = np.zeros(self.n, dtype=bool)
        self._min, self._max = np.inf, -np.inf
        self._sums = np.zeros((self.n, 2))

    def __enter__(self):
        self._ctx = atomic_path(self.path)
        tmp = self._ctx.__enter__()
        self._mrc = mrcfile.new_mmap(tmp, shape=self.shape, mrc_mode=2, overwrite=True)
        if not self.is_volume:
            self._mrc.set_image_stack()
        else:
            self._mrc.set_volume()
        return self

    def __setitem__(self, index: int, image: np.ndarray) -> None:
        image = np.asarray(image, dtype=np.float32)
        if image.shape != self.shape[1:]:
            raise ValueError(f"image shape {image.shape} != stack shape {self.shape[1:]}")
        self._mrc.data[index] = image
        self.written[index] = True
        # Header statistics accumulated slice by slice (memory stays one image).
        self._min = min(self._min, float(image.min()))
        self._max = max(self._max, float(image.max()))
        self._sums[index] = (float(image.sum(dtype=np.float64)),
                             float(np.square(image, dtype=np.float64).sum()))

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                if not self.written.all():
                    missing = np.flatnonzero(~self.written)
                    exc = RuntimeError(f"{self.path}: slices {missing.tolist()[:10]} never written")
                    exc_type = type(exc)
                else:
                    self._mrc.voxel_size = self.pixel_size
                    self._mrc.update_header_from_data()
                    count = float(np.prod(self.shape))
                    mean = self._sums[:, 0].sum() / count
                    var = max(self._sums[:, 1].sum() / count - mean ** 2, 0.0)
                    h = self._mrc.header
                    h.dmin, h.dmax, h.dmean, h.rms = self._min, self._max, mean, np.sqrt(var)
            self._mrc.close()
        finally:
            if exc_type is None:
                self._ctx.__exit__(None, None, None)
            else:
                self._ctx.__exit__(exc_type, exc, tb)
                if exc is not None and tb is None:
                    raise exc
        return False


def write_stack(path: str, data: np.ndarray, pixel_size: float, is_volume: bool = False) -> None:
    """Write a whole (n, y, x) array as a float32 MRC (atomically)."""
    data = np.asarray(data, dtype=np.float32)
    if data.ndim == 2:
        data = data[None]
    with StackWriter(path, data.shape[0], data.shape[1:], pixel_size, is_volume=is_volume) as w:
        for i in range(data.shape[0]):
            w[i] = data[i]


def write_volume(path: str, volume: np.ndarray, pixel_size: float) -> None:
    """Write a (z, y, x) volume as float32 MRC with the voxel size in the header."""
    write_stack(path, volume, pixel_size, is_volume=True)


# ----------------------------------------------------------------------------
# Tilt angles
# ----------------------------------------------------------------------------
def read_angles(path: str) -> np.ndarray:
    """Read a .tlt/.rawtlt file: one angle (degrees) per line, stack order."""
    if not os.path.exists(path):
        raise InputError(f"{path}: tilt-angle file not found; give a .tlt/.rawtlt "
                         "file with one angle (degrees) per line")
    angles = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            first = text.split()[0]
            try:
                value = float(first)
            except ValueError:
                raise InputError(f"{path}, line {lineno}: '{first}' is not a tilt angle; "
                                 "the file must hold one angle in degrees per line") from None
            if not np.isfinite(value) or abs(value) > 90:
                raise InputError(f"{path}, line {lineno}: tilt angle {value} is outside "
                                 "[-90, 90] degrees; check the file")
            angles.append(value)
    if not angles:
        raise InputError(f"{path}: no tilt angles in the file; give one angle per line")
    return np.asarray(angles, dtype=np.float64)


def write_angles(path: str, angles: Sequence[float]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            for a in angles:
                f.write(f"{float(a):.4f}\n")


def check_angles_match(angles: np.ndarray, n_images: int, stack_name: str, tlt_name: str) -> None:
    if len(angles) != n_images:
        raise InputError(f"{stack_name}: {n_images} images in the stack but {len(angles)} "
                         f"angles in {tlt_name}; give a tilt-angle file with one angle per image")
    order = np.argsort(angles, kind="stable")
    sorted_angles = np.asarray(angles)[order]
    dup = np.flatnonzero(np.diff(sorted_angles) <= 1e-6)
    if len(dup):
        a = sorted_angles[dup[0]]
        raise InputError(f"{tlt_name}: tilt angle {a:g} appears more than once; every "
                         "image needs its own angle (check the .tlt file)")


# ----------------------------------------------------------------------------
# SerialEM .mdoc
# ----------------------------------------------------------------------------
@dataclass
class MdocTilt:
    """One [ZValue = n] section of a SerialEM .mdoc."""
    z_value: int
    angle: float
    dose: float = 0.0                  # exposure of this image, e/A^2
    datetime: str = ""
    defocus: Optional[float] = None    # target defocus (microns, SerialEM sign)
    pixel_size: Optional[float] = None
    sub_frame_path: str = ""
    extra: dict = field(default_factory=dict)


@dataclass
class Mdoc:
    tilts: List[MdocTilt]
    header: dict

    @property
    def acquisition_order(self) -> np.ndarray:
        """1-based acquisition order per section (ZValue order), by DateTime
        when all sections carry one, else by ZValue (SerialEM writes sections
        in acquisition order)."""
        from datetime import datetime
        stamps = []
        for t in self.tilts:
            try:
                stamps.append(datetime.strptime(t.datetime.strip(), "%d-%b-%y  %H:%M:%S"))
            except ValueError:
                try:
                    stamps.append(datetime.strptime(" ".join(t.datetime.split()), "%d-%b-%y %H:%M:%S"))
                except ValueError:
                    stamps = None
                    break
        if stamps is not None and len(set(stamps)) == len(stamps):
            order = np.argsort(np.array(stamps), kind="stable")
        else:
            order = np.argsort([t.z_value for t in self.tilts], kind="stable")
        ranks = np.empty(len(order), dtype=int)
        ranks[order] = np.arange(1, len(order) + 1)
        return ranks

    @property
    def accumulated_dose(self) -> np.ndarray:
        """Dose received before each image (e/A^2), in section order: SerialEM's
        PriorRecordDose when every section has it, else the sum of the
        ExposureDose of the images acquired earlier."""
        prior = [t.extra.get("PriorRecordDose") for t in self.tilts]
        if all(p is not None for p in prior):
            try:
                return np.array([float(p.split()[0]) for p in prior])
            except ValueError:
                pass
        order = self.acquisition_order
        doses = np.array([t.dose for t in self.tilts], dtype=float)
        by_time = np.argsort(order)
        accum = np.zeros(len(doses))
        accum[by_time] = np.concatenate([[0.0], np.cumsum(doses[by_time])[:-1]])
        return accum


def read_mdoc(path: str) -> Mdoc:
    """Parse a SerialEM .mdoc: one MdocTilt per [ZValue] section, in ZValue order."""
    if not os.path.exists(path):
        raise InputError(f"{path}: .mdoc file not found")
    header, tilts, current = {}, [], None
    key_re = re.compile(r"^\s*([A-Za-z0-9_]+)\s*=\s*(.*?)\s*$")
    with open(path, errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            m = re.match(r"^\[ZValue\s*=\s*(\d+)\s*\]", line)
            if m:
                current = {"ZValue": m.group(1)}
                tilts.append(current)
                continue
            if line.startswith("["):  # [T = ...] and other non-image sections
                current = None
                continue
            m = key_re.match(line)
            if not m:
                continue
            key, value = m.group(1), m.group(2)
            if current is None:
                if not tilts:
                    header[key] = value
            else:
                current[key] = value
    out = []
    for sec in tilts:
        if "TiltAngle" not in sec:
            raise InputError(f"{path}: section [ZValue = {sec['ZValue']}] has no TiltAngle")

        def num(key, default=None):
            try:
                return float(sec[key].split()[0])
            except (KeyError, ValueError, IndexError):
                return default
        out.append(MdocTilt(z_value=int(sec["ZValue"]), angle=num("TiltAngle"),
                            dose=num("ExposureDose", 0.0) or 0.0,
                            datetime=sec.get("DateTime", ""),
                            defocus=num("Defocus", num("TargetDefocus")),
                            pixel_size=num("PixelSpacing"),
                            sub_frame_path=sec.get("SubFramePath", ""),
                            extra=dict(sec)))
    if not out:
        raise InputError(f"{path}: no [ZValue = n] sections; is this a SerialEM tilt-series .mdoc?")
    out.sort(key=lambda t: t.z_value)
    return Mdoc(tilts=out, header=header)
