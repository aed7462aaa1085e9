"""Scipion objects <-> the engine's files (the protocols' conversion layer).

The protocols are thin: they write a tilt series to plain files, run the
``cryotiger`` engine on them and turn the engine's files back into Scipion
objects.  Everything that converts lives here; the protocols' shared
behaviour (engine runner, output sets, failed series) is in
``protocols/protocol_base.py``.

1. **Engine files from a TiltSeries** (:func:`writeEngineFiles`, called by
   ``ProtCryoTigerBase.writeEngineInputs``): a stack in *stack order* (the
   tilt images sorted by their index), a .tlt in that order, the excluded
   views (disabled TiltImages) as a 1-based list, the per-image acquisition
   order and dose as a small JSON file (``cryotiger ... --acquisition-json``)
   and, for a series that carries an alignment but was not resampled with it,
   an IMOD .xf of the per-image transforms (``--xf``).
2. **Scipion objects from the engine's outputs**: :func:`newOutputTs`,
   :func:`newTiltImage`, :func:`updateTsAcquisition`.
3. **Image and volume data** for the protocols' own checks and metrics:
   :func:`readImage`, :func:`readVolume` (MRC through the engine's checked
   reader, other formats through Scipion's image readers).

Alignment (decision, see docs/scipion.md "Aligned input")
---------------------------------------------------------
Interpolation needs aligned images.  A tilt series is usable when
``interpolated()`` is True (already resampled; its transforms, if any, are
ignored) or when ``hasAlignment()`` is True: then the per-image 2D transforms
ARE APPLIED by the engine (``--xf``, bilinear, scipy; engine/align.py) and the
output is an aligned (``interpolated()`` True) series without transforms.
Scipion-em-tomo stores a TiltImage transform as the 3x3 matrix
``[[A11, A12, DX], [A21, A22, DY], [0, 0, 1]]`` of IMOD's .xf convention
(``TiltSeries.writeXfFile`` writes A11 A12 A21 A22 DX DY from it unchanged,
and the IMOD plugin reads .xf files into the same layout), which is what
engine/align.py applies: raw point x (pixels from the image centre) goes to
A x + d.  The .xf is written by the engine's own writer
(``engine.formats.xf.write_xf``), so both sides share one format implementation.

Doses (e/A^2): ``TiltRecord.dose`` is the image's own dose (acquisition
``dosePerFrame``); ``TiltRecord.priorDose`` the dose received BEFORE the image
(Scipion's ``accumDose`` minus the image's dose: Scipion's AccumDose includes
the image, the engine's ``accum_dose`` does not).

This module imports Scipion (tomo, pwem) but never TensorFlow; from the engine
it uses only the numpy/mrcfile modules of engine.formats (MRC, .tlt, .xf, acquisition JSON).
Units: angles in degrees, pixel sizes in Angstrom, doses in e/A^2; stacks are
(n, y, x) float32 and "stack order" means the tilt images sorted by their index.
"""
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Callable, List, Optional

import numpy as np

from pyworkflow.object import Boolean, String
from tomo.objects import TiltImage, TiltSeries

from .constants import ATTR_CONFIDENCE, ATTR_SOURCES, ATTR_SYNTHETIC
from .engine.formats.mrc import STACK_SUFFIXES
from .engine.formats.xf import write_xf

# The MRC suffixes the engine reads (engine/formats/mrc.py).
MRC_SUFFIXES = STACK_SUFFIXES


# ---------------------------------------------------------------------------
# Plain records of a tilt series (no database objects cross thread or step
# boundaries)
# ---------------------------------------------------------------------------
@dataclass
class TiltRecord:
    """One TiltImage of an input series as plain values (made by
    :func:`tiltRecords`), in stack order: where its image is, its angle
    (degrees), acquisition order, enabled flag, doses (e/Å²) and, when it is
    to be applied, its 2D transform."""
    position: int                 # 1-based position in the engine stack (= stack order)
    objId: int                    # TiltImage id in the input series
    fileName: str                 # image file (absolute)
    index: int                    # 1-based index of the image in fileName
    angle: float                  # degrees
    acqOrder: Optional[int]
    enabled: bool
    dose: float = 0.0             # e/A^2 of this image (acquisition dosePerFrame)
    priorDose: float = 0.0        # e/A^2 received before this image
    matrix: Optional[List[List[float]]] = None   # 3x3 transform (IMOD .xf layout) or None


@dataclass
class EngineInputs:
    """Files written for one tilt series by :func:`writeEngineFiles` (paths
    absolute), the pixel size (Å) and the records they were made from; saved
    as <tsId>_inputs.json so that later steps reload it (:meth:`load`)."""
    tsId: str
    stack: str                    # MRC stack in stack order (may be the input file itself)
    tlt: str                      # angles, one a line, stack order
    acquisitionJson: str          # {"order": [...], "dose": [...], "accum_dose": [...]}
    xf: Optional[str]             # IMOD .xf to apply, or None when already aligned
    excluded: str                 # '2,5' (1-based positions of disabled images) or ''
    pixelSize: float              # Angstrom
    records: List[TiltRecord] = field(default_factory=list)

    def engineArgs(self) -> str:
        """The engine's input arguments as one string: ``--input --angles
        --acquisition-json [--xf] [--exclude]`` (paths quoted)."""
        args = '--input "%s" --angles "%s" --acquisition-json "%s"' % (
            self.stack, self.tlt, self.acquisitionJson)
        if self.xf:
            args += ' --xf "%s"' % self.xf
        if self.excluded:
            args += " --exclude %s" % self.excluded
        return args

    def save(self, path: str) -> None:
        """Write these inputs (records included) as JSON to ``path`` (OSError
        when it cannot be written)."""
        with open(path, "w") as f:
            json.dump(asdict(self), f, indent=1)

    @classmethod
    def load(cls, path: str) -> "EngineInputs":
        """The inputs saved by :meth:`save` at ``path`` (raises OSError/ValueError
        when the file is missing or is not such a JSON)."""
        with open(path) as f:
            d = json.load(f)
        d["records"] = [TiltRecord(**r) for r in d.get("records", [])]
        return cls(**d)


def _plainFileName(obj, suffixes) -> str:
    """Absolute path of ``obj.getFileName()`` without a trailing Scipion
    format suffix (one of ``suffixes``, e.g. ':mrcs'; each stripped once, in order)."""
    fn = obj.getFileName()
    for suffix in suffixes:
        if fn.endswith(suffix):
            fn = fn[:-len(suffix)]
    return os.path.abspath(fn)


def imageFileName(ti) -> str:
    """Absolute path of a TiltImage's file, without Scipion's format suffix
    (':mrcs', ':mrc', ':st', ':ali')."""
    return _plainFileName(ti, (":mrcs", ":mrc", ":st", ":ali"))


def tiltRecords(ts: TiltSeries, withTransforms: bool = True) -> List[TiltRecord]:
    """The images of ``ts`` (TiltSeries; all, enabled or not) as
    :class:`TiltRecord` in stack order (sorted by index, then id).  Doses in
    e/Å²: ``dose`` = dosePerFrame, ``priorDose`` = accumDose - dosePerFrame
    (else doseInitial, else 0).  With ``withTransforms``, each record carries
    its image's 3x3 transform matrix (None for an image without one)."""
    records = []
    items = [ti.clone() for ti in ts.iterItems(orderBy="_index")]
    items.sort(key=lambda t: (t.getIndex() or 0, t.getObjId()))
    for pos, ti in enumerate(items, 1):
        acq = ti.getAcquisition()
        dose = (acq.getDosePerFrame() if acq is not None else None) or 0.0
        accum = acq.getAccumDose() if acq is not None and hasattr(acq, "getAccumDose") else None
        if accum is not None:
            prior = max(0.0, float(accum) - float(dose))
        else:
            prior = (acq.getDoseInitial() if acq is not None else None) or 0.0
        matrix = None
        if withTransforms and ti.hasTransform():
            matrix = np.asarray(ti.getTransform().getMatrix(), dtype=float).tolist()
        records.append(TiltRecord(position=pos, objId=ti.getObjId(), fileName=imageFileName(ti),
                                  index=ti.getIndex() or 1, angle=float(ti.getTiltAngle()),
                                  acqOrder=ti.getAcquisitionOrder(), enabled=bool(ti.isEnabled()),
                                  dose=float(dose), priorDose=float(prior), matrix=matrix))
    return records


def needsTransforms(ts) -> bool:
    """True when ``ts`` (TiltSeries) must be resampled with its per-image
    transforms (it has an alignment and is not ``interpolated()`` yet)."""
    return bool(ts.hasAlignment()) and not bool(ts.interpolated())


def stackCountErrors(tsId: str, fileName: str, indices: List[int], nz: int) -> List[str]:
    """Validation messages when the images of series ``tsId`` that live in
    ``fileName`` (1-based ``indices``) do not match its ``nz`` images: an
    index beyond the stack, or images 1..m of an n-image stack (m < n), which
    is what a .tlt/.mdoc one line short gives (tomo then makes one TiltImage
    per line and the last images are silently left out)."""
    name = os.path.basename(fileName)
    if max(indices) > nz:
        return ["%s: %s has %d images but the series refers to image %d; the stack and its "
                "metadata do not match (import again)." % (tsId, name, nz, max(indices))]
    if sorted(indices) == list(range(1, len(indices) + 1)) and len(indices) < nz:
        return ["%s: %s has %d images but the series has only %d tilt images (images %d-%d have "
                "no tilt angle): is the .tlt/.mdoc %d line(s) short? Give one angle per image "
                "and import again." % (tsId, name, nz, len(indices), len(indices) + 1, nz,
                                       nz - len(indices))]
    return []


def validateTiltSeriesFiles(tsSet, maxErrors: int = 10) -> List[str]:
    """Validation messages (list of str; the search stops after the series
    that brings them to ``maxErrors``) for the enabled series of ``tsSet``
    (SetOfTiltSeries): missing image files and stacks whose image count does
    not match the series (:func:`stackCountErrors`; MRC headers only)."""
    import mrcfile
    errors = []
    if tsSet is None:
        return errors
    for ts in tsSet.iterItems():
        if not ts.isEnabled():
            continue
        files = {}
        for ti in ts.iterItems():
            files.setdefault(imageFileName(ti), []).append(ti.getIndex() or 1)
        for fn, indices in files.items():
            if not os.path.exists(fn):
                errors.append("%s: image file %s is missing." % (ts.getTsId(), fn))
            elif os.path.splitext(fn)[1].lower() in MRC_SUFFIXES:
                with mrcfile.open(fn, mode="r", permissive=True, header_only=True) as m:
                    errors += stackCountErrors(ts.getTsId(), fn, indices, int(m.header.nz))
        if len(errors) >= maxErrors:
            break
    return errors


def writeXf(path: str, records: List[TiltRecord]) -> None:
    """Write ``path``, the IMOD .xf (A11 A12 A21 A22 DX DY, shifts in
    pixels, one line per image) of ``records`` in stack order, identity for
    images without a transform; written by the engine's .xf writer
    (``engine.formats.xf.write_xf``).  OSError when it cannot be written."""
    write_xf(path, [np.eye(3) if r.matrix is None else np.asarray(r.matrix, dtype=float)
                    for r in records])


# ---------------------------------------------------------------------------
# Image data
# ---------------------------------------------------------------------------
def readImage(fileName: str, index: int) -> np.ndarray:
    """Image ``index`` (1-based; ignored for a single 2D image) of
    ``fileName`` as a (y, x) float32 array.

    MRC files go through the engine's reader (``engine.formats.mrc.open_stack``: header
    checks, IMOD's rule for 8-bit data; raises ``engine.InputError`` on a bad
    file); other formats through Scipion's image readers."""
    if os.path.splitext(fileName)[1].lower() in MRC_SUFFIXES:
        # The engine's reader: header checks and IMOD's rule for 8-bit data.
        from .engine.formats.mrc import open_stack
        with open_stack(fileName) as m:
            data = m.data
            img = data if data.ndim == 2 else data[index - 1]
            return np.array(img, dtype=np.float32)
    from pwem.emlib.image.image_readers import ImageReadersRegistry
    stack = ImageReadersRegistry.open(fileName)
    return np.asarray(stack.getImage(index - 1), dtype=np.float32)


def isWholeMrcStack(records: List[TiltRecord]) -> bool:
    """True when ``records`` (stack order) are exactly images 1..n of one MRC
    file with n images (read from its header), which the engine may then read
    in place."""
    files = {r.fileName for r in records}
    if len(files) != 1:
        return False
    fn = files.pop()
    if os.path.splitext(fn)[1].lower() not in MRC_SUFFIXES:
        return False
    if [r.index for r in records] != list(range(1, len(records) + 1)):
        return False
    import mrcfile
    with mrcfile.open(fn, mode="r", permissive=True, header_only=True) as m:
        nz = int(m.header.nz)
    return nz == len(records)


def volumeFileName(obj) -> str:
    """Absolute file of a Tomogram/TomoMask without Scipion's format suffix
    (':mrcs', ':mrc', ':rec', ':map')."""
    return _plainFileName(obj, (":mrcs", ":mrc", ":rec", ":map"))


def readVolume(obj) -> np.ndarray:
    """The (z, y, x) float32 data of a Tomogram or TomoMask (``obj``).  MRC
    files go through the engine's checked reader (raises
    ``engine.InputError`` on a bad file); other formats through Scipion's
    image readers.  OSError when the file is missing."""
    fn = volumeFileName(obj)
    if os.path.splitext(fn)[1].lower() in MRC_SUFFIXES:
        # The engine's checked reader (header fields, modes, IMOD's 8-bit rule: IMOD
        # masks are often unsigned bytes).
        from .engine.formats.mrc import open_stack
        with open_stack(fn) as m:
            return np.array(m.data, dtype=np.float32)
    from pwem.emlib.image import ImageHandler
    img = ImageHandler().read(fn)
    return np.asarray(img.getData(), dtype=np.float32)


# ---------------------------------------------------------------------------
# Tilt series -> engine files
# ---------------------------------------------------------------------------
def writeEngineFiles(records: List[TiltRecord], folder: str, tsId: str, pixelSize: float,
                     applyXf: bool, log: Optional[Callable[[str], None]] = None) -> EngineInputs:
    """Write the engine's input files for the tilt series ``tsId`` made of
    ``records`` (:func:`tiltRecords`, stack order) into ``folder``.

    Files: <tsId>.mrcs (unless the series is exactly images 1..n of one MRC
    file, which is then used in place, read only), <tsId>.tlt (degrees),
    <tsId>_acquisition.json (``dose`` and ``accum_dose`` = dose before the
    image, e/A^2, and ``order`` when every image has a unique acquisition
    order), <tsId>.xf (only with ``applyXf``) and <tsId>_inputs.json (the
    returned :class:`EngineInputs`, reloadable with ``EngineInputs.load``).
    Excluded views: 1-based positions of the disabled images.  ``pixelSize``
    in Angstrom.  ``log``: called with a line when the acquisition orders are
    not usable.  Raises ValueError when there are no records or the images do
    not all have the same size.
    """
    from .engine.formats.acquisition import write_acquisition_json
    from .engine.formats.mrc import StackWriter
    from .engine.formats.tlt import write_angles
    if not records:
        raise ValueError("%s: the tilt series has no images" % tsId)
    os.makedirs(folder, exist_ok=True)
    base = os.path.join(folder, tsId)
    if isWholeMrcStack(records):
        stack = records[0].fileName
    else:
        stack = base + ".mrcs"
        first = readImage(records[0].fileName, records[0].index)
        with StackWriter(stack, len(records), first.shape, pixelSize) as w:
            for r in records:
                img = first if r.position == 1 else readImage(r.fileName, r.index)
                if img.shape != first.shape:
                    raise ValueError("%s: image %d is %dx%d but image 1 is %dx%d; all images "
                                     "of a tilt series must have the same size"
                                     % (tsId, r.position, img.shape[1], img.shape[0],
                                        first.shape[1], first.shape[0]))
                w[r.position - 1] = img
    write_angles(base + ".tlt", [r.angle for r in records])
    orders = [r.acqOrder for r in records]
    order = None
    if all(o is not None for o in orders) and len(set(orders)) == len(orders):
        order = [int(o) for o in orders]
    elif log is not None:
        log("%s: acquisition orders missing or not unique; the engine uses the "
            "stack order" % tsId)
    write_acquisition_json(base + "_acquisition.json", order=order,
                           dose=[r.dose for r in records],
                           accum_dose=[r.priorDose for r in records])
    xf = None
    if applyXf:
        xf = base + ".xf"
        writeXf(xf, records)
    excluded = ",".join(str(r.position) for r in records if not r.enabled)
    inputs = EngineInputs(tsId=tsId, stack=os.path.abspath(stack),
                          tlt=os.path.abspath(base + ".tlt"),
                          acquisitionJson=os.path.abspath(base + "_acquisition.json"),
                          xf=os.path.abspath(xf) if xf else None, excluded=excluded,
                          pixelSize=pixelSize, records=records)
    inputs.save(base + "_inputs.json")
    return inputs


# ---------------------------------------------------------------------------
# Engine outputs -> Scipion objects
# ---------------------------------------------------------------------------
def recordDoses(entry: dict) -> tuple:
    """(dose, dose before, dose after) in e/A^2 of one OUT.json entry: the
    image's own dose, the dose received before it (OUT.json ``accum_dose`` /
    ``dose_before``) and after it (``accumulated_dose_after``; Scipion's
    AccumDose).  Records written before ``dose_before`` existed give the same
    values from ``accum_dose`` + ``dose``."""
    dose = float(entry["dose"])
    before = float(entry.get("dose_before", entry["accum_dose"]))
    after = float(entry.get("accumulated_dose_after", before + dose))
    return dose, before, after


def newOutputTs(inTs: TiltSeries, interpolated: Optional[bool] = None) -> TiltSeries:
    """A new, empty output TiltSeries with the info of ``inTs`` (tsId,
    acquisition, origin, CTF-corrected flag); ``interpolated`` overrides the
    resampled flag (True: its images are aligned)."""
    outTs = TiltSeries()
    outTs.copyInfo(inTs)
    if interpolated is not None:
        outTs.setInterpolated(interpolated)
    return outTs


def newTiltImage(src: TiltImage, fileName: str, index: int, synthetic: bool,
                 sources: str, angle: Optional[float] = None,
                 acqOrder: Optional[int] = None, enabled: Optional[bool] = None,
                 keepTransform: bool = False) -> TiltImage:
    """A TiltImage copied from ``src`` (acquisition, tsId, sampling rate,
    ...) at ``index`` (1-based) of ``fileName``, with the plugin's synthetic
    flag and sources attributes set (set them on EVERY output image: the
    first item decides the table's columns).  Odd/even files are dropped
    (they would not match the new stack).

    Args:
        src: the input TiltImage it comes from.
        fileName: the output stack; index: the image's position in it.
        synthetic: True for a tilt made by the plugin.
        sources: 1-based input positions it was made from, comma separated.
        angle: tilt angle in degrees (default: ``src``'s).
        acqOrder: acquisition order (default: ``src``'s).
        enabled: enabled flag (default: ``src``'s).
        keepTransform: keep ``src``'s transform (False: the output images
            are already aligned).
    """
    ti = TiltImage()
    ti.copyInfo(src, copyId=False, copyTM=keepTransform)
    ti.setLocation(index, fileName)
    ti.setOddEven([])
    if angle is not None:
        ti.setTiltAngle(float(angle))
    if acqOrder is not None:
        ti.setAcquisitionOrder(int(acqOrder))
    if enabled is not None:
        ti.setEnabled(bool(enabled))
    setattr(ti, ATTR_SYNTHETIC, Boolean(bool(synthetic)))
    setattr(ti, ATTR_SOURCES, String(sources))
    return ti


def isSynthetic(ti) -> bool:
    """True for a tilt image (TiltImage) made by the interpolation protocol
    (its ``_cryotigerSynthetic`` attribute); False when the attribute is
    absent (acquired tilts of series that were never interpolated)."""
    flag = getattr(ti, ATTR_SYNTHETIC, None)
    return bool(flag.get()) if flag is not None and hasattr(flag, "get") else False


def tiltConfidence(ti) -> Optional[float]:
    """The FILM confidence (0..1, no unit) that the interpolation protocol
    set on a tilt image (TiltImage attribute ``_cryotigerConfidence``; 1.0
    for acquired tilts), or None when it has none (linear interpolation,
    series never interpolated)."""
    value = getattr(ti, ATTR_CONFIDENCE, None)
    value = value.get() if value is not None and hasattr(value, "get") else None
    return None if value is None else float(value)


def microscopeOf(acq) -> dict:
    """The engine's microscope constants from a tilt series' Acquisition
    (TomoAcquisition): ``voltage`` (kV), ``cs`` (spherical aberration, mm)
    and ``amp_contrast`` (fraction); a value that is missing or 0 becomes
    300 kV, 2.7 mm or 0.07."""
    return {"voltage": acq.getVoltage() or 300.0, "cs": acq.getSphericalAberration() or 2.7,
            "amp_contrast": acq.getAmplitudeContrast() or 0.07}


def updateTsAcquisition(outTs: TiltSeries, angles: List[float],
                        accumDose: Optional[float] = None) -> None:
    """Set the angle range and mean step (degrees) of the acquisition of
    ``outTs`` (a TiltSeries or SetOfTiltSeries) from ``angles`` (all output
    angles, degrees, any order, at least one), and its accumulated dose
    (e/Å²) when given."""
    acq = outTs.getAcquisition()
    a = np.sort(np.asarray(angles, dtype=float))
    acq.setAngleMin(float(a[0]))
    acq.setAngleMax(float(a[-1]))
    if len(a) > 1:
        acq.setStep(float(np.round(np.mean(np.diff(a)), 4)))
    if accumDose is not None:
        acq.setAccumDose(float(accumDose))


#: The training record the engine writes into every model folder it trains
#: (``cryotiger train``: configurations, database, steps, losses).
TRAIN_RECORD = "cryotiger_train.json"


def readTrainingRecord(folder: str) -> dict:
    """The training record (cryotiger_train.json, a JSON object) of the model
    folder ``folder``; {} when there is none (a model the plugin did not train,
    e.g. a published one).

    Raises:
        OSError, ValueError: when the file exists but cannot be read as JSON.
    """
    path = os.path.join(folder, TRAIN_RECORD)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)
