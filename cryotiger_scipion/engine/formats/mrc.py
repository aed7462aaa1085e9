"""MRC stacks and volumes: the one reader (checked header, memory map) and
the one writer (slice by slice, atomic) of the engine.

Format: MRC2014 (Cheng et al., J. Struct. Biol. 192 (2015) 146-150;
https://www.ccpem.ac.uk/mrc_format/mrc2014.php), as IMOD writes it (IMOD's
"MRC file format" page, https://bio3d.colorado.edu/imod/doc/mrc_format.txt).
The header is checked field by field before mrcfile opens the data, so a
broken or truncated file is one line naming the field, never a traceback.
Modes read: 0 (8-bit; unsigned when the file carries IMOD's stamp without
the signed flag, IMOD's rule, else signed as MRC2014), 1 (int16), 2
(float32), 6 (uint16), 12 (float16); complex modes 3/4 and IMOD's packed
mode 101 are refused.  Mode written: 2 (float32), with the pixel size in the
header and the statistics (min, max, mean, rms) of the data.

Axis order of every array is (n, y, x) for a stack (one image per section)
and (z, y, x) for a volume; pixel sizes in Angstrom, 0 meaning unknown.
Writers are atomic (``outputs.atomic_path``): data go to a hidden temporary
file beside the destination, renamed into place only when complete.
"""
from __future__ import annotations

import contextlib
import math
import os
import struct
import warnings
from dataclasses import dataclass
from typing import Optional, Sequence

import mrcfile
import numpy as np

from .. import InputError
from ..outputs import atomic_path

#: File suffixes read as MRC (Scipion's convert.readImage and readVolume).
STACK_SUFFIXES = (".mrc", ".mrcs", ".st", ".ali", ".rec", ".map")


# ----------------------------------------------------------------------------
# MRC
# ----------------------------------------------------------------------------
# Bytes per value of the MRC modes we read (MRC2014): 0 int8/uint8 (IMOD rule
# below), 1 int16, 2 float32, 6 uint16, 12 float16.  Complex modes 3 and 4 and
# IMOD's packed 4-bit mode 101 are refused.
MRC_MODE_BYTES = {0: 1, 1: 2, 2: 4, 6: 2, 12: 2}
IMOD_STAMP = 1146047817          # 'IMOD' at header byte 152 (imodStamp)
IMOD_FLAG_SIGNED_BYTES = 1       # bit 0 of imodFlags (header byte 156)


#: Pixel sizes (Angstrom) outside this range are not cryo-EM sampling (a header
#: 1e30, a denormal): treated as unknown / refused, and an output header's cell
#: size (pixel size x grid size, float32) can never overflow to inf.
PIXEL_SIZE_RANGE = (1e-3, 1e5)


def usable_pixel_size(value) -> float:
    """``value`` (Angstrom, any type) as a float if it is a usable pixel size
    (a number, finite, inside :data:`PIXEL_SIZE_RANGE`), else 0.0 (unknown).
    Never raises."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return 0.0
    lo, hi = PIXEL_SIZE_RANGE
    return v if math.isfinite(v) and lo <= v <= hi else 0.0


def check_pixel_size_option(value, option: str = "--pixel-size") -> None:
    """Check a pixel size given on the command line (``option``, Angstrom).

    Returns None.  Raises InputError (one line naming ``option`` and the value)
    unless ``value`` is None (not given) or a usable pixel size
    (:func:`usable_pixel_size`)."""
    if value is None:
        return
    if not usable_pixel_size(value):
        lo, hi = PIXEL_SIZE_RANGE
        raise InputError(f"{option} {value}: give the pixel size in Angstrom as a positive "
                         f"number between {lo:g} and {hi:g} (e.g. --pixel-size 2.17), or leave "
                         "it out to use the header's")


@dataclass
class MrcInfo:
    """What the header of an MRC file says, after the checks of :func:`_check_mrc`."""
    shape: tuple                # (nz, ny, nx)
    mode: int
    unsigned_bytes: bool        # mode 0 read as uint8 (IMOD's rule)
    pixel_size: float           # Angstrom in x; 0 = unknown (unset, 0, negative, NaN, inf)


def _raw_header(path: str) -> dict:
    """The fields we check, decoded from the first 1024 bytes of ``path`` in the
    file's byte order (machine stamp at byte 212, as MRC2014; little-endian if unset)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(1024)
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror}); check the file and its "
                         "permissions") from None
    if len(raw) < 1024:
        raise InputError(f"{path}: {len(raw)} bytes, too small for an MRC header (1024 bytes); "
                         "give an MRC stack (.mrc/.mrcs/.st/.ali)")
    order = ">" if raw[212] == 0x11 else "<"
    nx, ny, nz, mode = struct.unpack(order + "4i", raw[0:16])
    mx = struct.unpack(order + "i", raw[28:32])[0]
    cella_x = struct.unpack(order + "f", raw[40:44])[0]
    nsymbt = struct.unpack(order + "i", raw[92:96])[0]
    stamp, flags = struct.unpack(order + "2i", raw[152:160])
    return dict(nx=nx, ny=ny, nz=nz, mode=mode, mx=mx, cella_x=cella_x, nsymbt=nsymbt,
                imod_stamp=stamp, imod_flags=flags, map_id=raw[208:212] == b"MAP ")


def _check_mrc(path: str) -> MrcInfo:
    """Check that ``path`` is an MRC file we can read; InputError (one line
    naming the file and the field) otherwise.  Returns its :class:`MrcInfo`."""
    if not os.path.exists(path):
        raise InputError(f"{path}: file not found; give the path of an MRC stack")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a folder; give the path of an MRC stack")
    fields = _raw_header(path)
    nx, ny, nz, mode = fields["nx"], fields["ny"], fields["nz"], fields["mode"]
    if not fields["map_id"] and (min(nx, ny, nz) < 1 or mode not in MRC_MODE_BYTES
                                 or fields["nsymbt"] < 0):
        # Neither the MRC2014 identifier nor a plausible old-style header.
        raise InputError(f"{path}: not an MRC file (no 'MAP ' identifier and header nx, ny, nz, "
                         f"mode = {nx}, {ny}, {nz}, {mode}); give an MRC stack "
                         "(.mrc/.mrcs/.st/.ali), e.g. convert TIFF with IMOD's tif2mrc")
    for name in ("nx", "ny", "nz"):
        if fields[name] < 1:
            raise InputError(f"{path}: broken MRC header: {name} = {fields[name]} (image size must "
                             "be at least 1); the file is damaged or not an MRC stack: export it again")
    if fields["nsymbt"] < 0:
        raise InputError(f"{path}: broken MRC header: nsymbt = {fields['nsymbt']} (extended header "
                         "size must be 0 or more); the file is damaged: export it again")
    if mode in (3, 4):
        raise InputError(f"{path}: MRC mode {mode} holds complex numbers (Fourier data), not "
                         "images; give a real-space stack (mode 0, 1, 2, 6 or 12)")
    if mode not in MRC_MODE_BYTES:
        raise InputError(f"{path}: MRC mode {mode} is not supported; "
                         "convert the stack to mode 2 (float32) or 1/6 (16-bit)")
    expected = nx * ny * nz * MRC_MODE_BYTES[mode]
    size = os.path.getsize(path)
    header_bytes = 1024 + fields["nsymbt"]
    if size < header_bytes + expected:
        raise InputError(
            f"{path}: truncated MRC file: the header announces {nz} images of "
            f"{nx}x{ny} ({header_bytes + expected} bytes) but the file has {size} bytes; "
            "copy or export the stack again")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")        # permissive mode warns on odd headers
            with mrcfile.open(path, mode="r", permissive=True, header_only=True) as m:
                if m.header is None:
                    raise ValueError("no MRC header")
    except Exception as exc:  # mrcfile raises ValueError / OSError variants
        raise InputError(f"{path}: not a readable MRC file ({exc}); "
                         "give an MRC stack (.mrc/.mrcs/.st/.ali)") from exc
    # IMOD's rule for mode 0: a file with the IMOD stamp holds unsigned bytes unless
    # bit 0 of imodFlags is set.  Without the stamp we follow MRC2014 (signed), as mrcfile.
    unsigned = (mode == 0 and fields["imod_stamp"] == IMOD_STAMP
                and not fields["imod_flags"] & IMOD_FLAG_SIGNED_BYTES)
    mx, cella_x = fields["mx"], fields["cella_x"]
    px = usable_pixel_size(cella_x / mx) if mx > 0 and math.isfinite(cella_x) else 0.0
    return MrcInfo(shape=(nz, ny, nx), mode=mode, unsigned_bytes=unsigned, pixel_size=px)


class _VoxelSize:
    def __init__(self, px: float):
        self.x = self.y = self.z = px


class MrcStack:
    """A checked MRC stack opened read-only and memory-mapped (see :func:`open_stack`).

    ``data``: (n, y, x) (or (y, x) for one image) in the file's type, 8-bit
    data as IMOD reads them; ``pixel_size``/``voxel_size.x``: Angstrom, 0 when
    the header has no usable value; ``header``: the raw mrcfile header;
    ``info``: the checked :class:`MrcInfo`.  Raises InputError as
    :func:`open_stack`.
    """

    def __init__(self, path: str):
        self.path = path
        self.info = _check_mrc(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._mrc = mrcfile.mmap(path, mode="r", permissive=True)
        data = self._mrc.data
        if data is None:
            self._mrc.close()
            raise InputError(f"{path}: the MRC data could not be read; export the stack again")
        self.data = data.view(np.uint8) if self.info.unsigned_bytes else data
        self.pixel_size = self.info.pixel_size
        self.voxel_size = _VoxelSize(self.pixel_size)

    @property
    def header(self):
        """The raw MRC header (``mrcfile`` record array; prefer ``.info``)."""
        return self._mrc.header

    def close(self) -> None:
        """Close the memory map (``data`` must not be used afterwards)."""
        self._mrc.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def open_stack(path: str) -> MrcStack:
    """Open an MRC stack read-only and memory-mapped (no data read yet).

    Returns an :class:`MrcStack`; ``.data`` is (n, y, x) (a single 2D image
    is (y, x)).  Raises InputError (one line naming the file and the problem)
    for a missing file, a broken header (nx, ny, nz < 1, ...), complex or
    unknown modes and truncated data.  Use as a context manager.
    """
    return MrcStack(path)


def stack_shape(path: str) -> tuple:
    """The shape (n, y, x) in pixels of the MRC stack ``path``, from its
    checked header (nz, ny, nx; a single image is (1, y, x)); no data read.
    Raises InputError as :func:`open_stack`."""
    return _check_mrc(path).shape


def read_pixel_size(path: str) -> float:
    """Pixel size (Angstrom) of the MRC file ``path`` from its checked header
    (cell size x / grid size x, MRC2014 ``cella.x / mx``); 0.0 when unknown
    (unset, 0, negative, NaN, inf, outside :data:`PIXEL_SIZE_RANGE`, or grid
    size 0).  Raises InputError as :func:`open_stack`."""
    return _check_mrc(path).pixel_size


def resolve_pixel_size(given: Optional[float], path: str, header_px: Optional[float] = None,
                       required: bool = True) -> float:
    """The pixel size (Angstrom) to use for the stack ``path``: ``given``
    (--pixel-size) when not None, else the header's (``header_px`` when the
    caller has read it already, else read from ``path``).

    Returns a float > 0, or 0.0 (unknown) only when not ``required``.
    Raises InputError when ``given`` is not a usable pixel size
    (:func:`check_pixel_size_option`), or when ``required`` and the header has
    no usable value (the message asks for --pixel-size)."""
    if given is not None:
        check_pixel_size_option(given)
        return float(given)
    px = usable_pixel_size(read_pixel_size(path) if header_px is None else header_px)
    if required and not px:
        lo, hi = PIXEL_SIZE_RANGE
        raise InputError(f"{path}: the header has no usable pixel size (0, negative, NaN, "
                         f"infinite or outside {lo:g}..{hi:g} A); give --pixel-size in Angstrom")
    return px


def read_stack(path: str, check_finite: bool = True) -> tuple:
    """Read a whole MRC stack into memory: ((n, y, x) float32 array, pixel size
    in Angstrom, 0 = unknown); a single image becomes (1, y, x).  Raises
    InputError as :func:`open_stack`, and with ``check_finite`` when an image
    holds NaN or infinite values (naming the images, from 1)."""
    with open_stack(path) as m:
        data = np.asarray(m.data, dtype=np.float32)
        pixel_size = m.pixel_size
    if data.ndim == 2:
        data = data[None]
    if check_finite:
        check_finite_array(data, path)
    return np.array(data, copy=True), pixel_size


def check_finite_array(data: np.ndarray, name: str) -> None:
    """Check that every image of ``data`` ((n, y, x), any real type) holds only
    finite values; ``name`` (a file name) starts the message.  Returns None;
    raises InputError naming the bad images (numbered from 1)."""
    check_finite_views(data, range(data.shape[0]), name)


def check_finite_views(data, views, name: str, excluded_hint: bool = True) -> None:
    """Check that images ``views`` (0-based) of ``data`` (n, y, x), e.g. a
    memory map, hold only finite values, one image at a time; InputError naming
    the bad images (numbered from 1) otherwise.  Called before any work by
    every command on the views it uses (excluded views are not checked)."""
    bad = [int(i) + 1 for i in views if not np.all(np.isfinite(data[int(i)]))]
    if bad:
        fix = "fix those images or exclude them (--exclude)" if excluded_hint else "fix those images"
        raise InputError(f"{name}: NaN or infinite values in image(s) "
                         f"{', '.join(map(str, bad[:10]))}{' ...' if len(bad) > 10 else ''} "
                         f"(numbered from 1); {fix}")


class StackWriter:
    """Write an (n, y, x) float32 MRC stack (mode 2) slice by slice, atomically.

    >>> with StackWriter("out.mrcs", n, (ny, nx), pixel_size=2.1) as w:
    ...     w[i] = image
    """

    def __init__(self, path: str, n: int, shape_yx: Sequence[int], pixel_size: float,
                 is_volume: bool = False):
        """``path``: the file to write (atomically, :func:`outputs.atomic_path`);
        ``n`` images of ``shape_yx`` (y, x) pixels; ``pixel_size`` in Angstrom
        (written to the header as the voxel size; 0 = unknown); ``is_volume``:
        mark the file as a (z, y, x) volume instead of an image stack.

        Entering the block creates the file and reserves its disk space;
        OutputError (no space, read-only folder, permission denied) or
        InputError (missing folder) when that fails.  ``w[i] = image`` takes a
        (y, x) array (cast to float32; ValueError for another shape).  Leaving
        the block without error writes the header statistics and renames the
        file into place; RuntimeError when an image was never written; on any
        error the temporary file is removed and nothing appears at ``path``.
        """
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
        try:
            self._mrc = mrcfile.new_mmap(tmp, shape=self.shape, mrc_mode=2, overwrite=True)
            # Reserve the blocks now: a memory map on a full disk dies of SIGBUS.
            from ..outputs import preallocate
            fd = os.open(tmp, os.O_RDWR)
            try:
                preallocate(fd, os.fstat(fd).st_size, self.path)
            finally:
                os.close(fd)
        except BaseException as exc:
            if self._mrc is not None:
                with contextlib.suppress(Exception):
                    self._mrc.close()
            self._ctx.__exit__(type(exc), exc, exc.__traceback__)
            if isinstance(exc, OSError):
                from ..outputs import write_error
                raise write_error(exc, self.path) from None
            raise
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
    """Write ``data`` ((n, y, x), or (y, x) for one image; cast to float32) as
    an MRC stack at ``path``, atomically, with ``pixel_size`` (Angstrom) in the
    header; ``is_volume`` marks it a (z, y, x) volume.  Errors as
    :class:`StackWriter`."""
    data = np.asarray(data, dtype=np.float32)
    if data.ndim == 2:
        data = data[None]
    with StackWriter(path, data.shape[0], data.shape[1:], pixel_size, is_volume=is_volume) as w:
        for i in range(data.shape[0]):
            w[i] = data[i]


def write_volume(path: str, volume: np.ndarray, pixel_size: float) -> None:
    """Write ``volume`` ((z, y, x), cast to float32) as an MRC volume at
    ``path``, atomically, with the voxel size ``pixel_size`` (Angstrom) in
    the header.  Errors as :class:`StackWriter`."""
    write_stack(path, volume, pixel_size, is_volume=True)
