"""Download, check and install the published FILM models (``cryotiger model download``).

Where the models come from: the cryoTIGER authors' public ownCloud share
(``SHARE_URL``, linked from the cryoTIGER README, github.com/turonova/cryoTIGER),
which holds two folders:

* ``cryoTIGER_model/`` - the cryoTIGER network trained on cryo-ET tilt series
  (Majtner et al. 2025);
* ``pre-trained_Vimeo-90K_data_model/`` - FILM's network trained on the
  Vimeo-90K videos (Reda et al., ECCV 2022).

A public share downloads as one archive (zip); ``?path=/&files=<folder>``
asks for one folder only.  Both are FILM SavedModels with the published
configuration (34,436,667 parameters).

Install steps, each safe to interrupt:

1. download to ``<output>/.<folder>.download/archive.part``; an interrupted
   download is resumed with an HTTP Range request (by the automatic retries,
   or by running the same command again); a server that ignores Range makes
   it restart from zero;
2. unpack (zip or tar; members outside the archive refused) into a hidden
   temporary folder ``<output>/.<folder>.unpack-*`` beside the destination;
3. check the model there: SavedModel layout (saved_model.pb + variables/),
   every variable of the expected FILM configuration present by name with
   its shape, no other FILM variable, and the parameter count;
4. only then rename it into ``<output>/<folder>`` (an older copy is replaced
   in one rename), with ``cryotiger_download.json`` recording the URL,
   archive SHA-256 and the check's result.

So ``<output>/<folder>`` is either the previous model, or the new checked
one: never a half-unpacked model.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from typing import Optional

from . import CryoTigerError, InputError
from ..constants import MODEL_CRYOTIGER, MODEL_RECORD, MODEL_VIMEO, MODELS_SHARE_URL

#: The public share of the cryoTIGER authors (from the cryoTIGER README).
SHARE_URL = MODELS_SHARE_URL
#: Parameters of the published FILM configuration (FilmConfig.published()).
PUBLISHED_PARAMETERS = 34_436_667
#: Record written inside an installed model folder.
RECORD = MODEL_RECORD
#: Name given on the command line -> folder name inside CRYOTIGER_MODELS.
MODELS = {
    "cryotiger": MODEL_CRYOTIGER,
    "vimeo": MODEL_VIMEO,
}
#: Environment variable naming the models folder (the Plugin variable of the same name).
MODELS_ENV = "CRYOTIGER_MODELS"
CHUNK = 1 << 20


def install_hint(name: str = "cryotiger") -> str:
    """One sentence: where the published models come from and the command that installs them."""
    return (f"the published models come from the cryoTIGER authors' public share ({SHARE_URL}); "
            f"install with 'cryotiger model download {name}' (into $CRYOTIGER_MODELS, or "
            f"--output DIR), in Scipion 'scipion3 installb cryotiger_models'")


def default_url(name: str) -> str:
    """Download URL of one model folder of the public share (ownCloud's folder-zip link)."""
    return f"{SHARE_URL}/download?path=%2F&files={MODELS[name]}"


def models_dir(output: Optional[str] = None) -> str:
    """The absolute folder models are installed into: ``output``, else
    $CRYOTIGER_MODELS.

    Raises:
      InputError: when neither is given.
    """
    out = output or os.environ.get(MODELS_ENV, "")
    if not out:
        raise InputError(f"no models folder: give --output DIR or set {MODELS_ENV} (the folder that "
                         "holds cryoTIGER_model/ and pre-trained_Vimeo-90K_data_model/)")
    return os.path.abspath(out)


# ----------------------------------------------------------------------------
# 1. resumable download
# ----------------------------------------------------------------------------
class Interrupted(CryoTigerError):
    """The transfer stopped before the end (what arrived is kept for a resume)."""


def _content_range_start(value: str) -> Optional[int]:
    # 'bytes 100-999/1000' -> 100
    try:
        unit, rest = value.strip().split(" ", 1)
        if unit != "bytes":
            return None
        return int(rest.split("-", 1)[0])
    except (ValueError, AttributeError):
        return None


def fetch(url: str, part: str, progress: bool = True, timeout: float = 60.0) -> dict:
    """Download ``url`` into ``part``, resuming from its current size.

    Sends ``Range: bytes=N-`` when ``part`` holds N bytes and a record beside
    it (``part + '.json'``) says they came from the same URL (and, when the
    server gave them, the same ETag / Last-Modified).  A 206 reply with the
    right start is appended; any other success reply restarts the file from
    zero.  Returns {'bytes', 'total' (None when unknown), 'resumed_from'}.
    Raises ``Interrupted`` when the connection ends early (``part`` keeps
    what arrived), CryoTigerError for HTTP errors.
    """
    from .progress import Progress
    meta_path = part + ".json"
    have = os.path.getsize(part) if os.path.exists(part) else 0
    meta = {}
    if have and os.path.exists(meta_path):
        try:
            with open(meta_path) as f:
                meta = json.load(f)
        except ValueError:
            meta = {}
    if meta.get("url") != url:
        have = 0
    req = urllib.request.Request(url, headers={"User-Agent": "cryotiger-download"})
    if have:
        req.add_header("Range", f"bytes={have}-")
        validator = meta.get("etag") or meta.get("last_modified")
        if validator:
            req.add_header("If-Range", validator)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:       # range not satisfiable: start again
            os.remove(part)
            return fetch(url, part, progress, timeout)
        raise CryoTigerError(f"{url}: HTTP {exc.code} {exc.reason}; check the URL (--url) "
                             "or try again later") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Interrupted(f"{url}: cannot connect ({reason})") from None
    with resp:
        start = 0
        if resp.status == 206:
            start = _content_range_start(resp.headers.get("Content-Range", ""))
            if start != have:              # not the range we asked for: start again
                resp.close()
                if os.path.exists(part):
                    os.remove(part)
                return fetch(url, part, progress, timeout)
        length = resp.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        total = (start + length) if length is not None else None
        new_meta = {"url": url, "etag": resp.headers.get("ETag"),
                    "last_modified": resp.headers.get("Last-Modified"), "total": total}
        with open(meta_path, "w") as f:
            json.dump(new_meta, f)
        mode = "ab" if start else "wb"
        done = start
        prog = Progress(max(1, -(-(total or 0) // CHUNK)), "download", unit="MiB",
                        enabled=progress and total is not None)
        if start:
            prog.log(f"resuming at {start / CHUNK:.1f} MiB")
            prog.done = start // CHUNK
        shown = start // CHUNK
        with open(part, mode) as f:
            while True:
                try:
                    chunk = resp.read(CHUNK)
                except (OSError, ValueError) as exc:   # reset, timeout, IncompleteRead
                    f.flush()
                    raise Interrupted(f"{url}: transfer interrupted at {done / CHUNK:.1f} MiB "
                                      f"({type(exc).__name__})") from None
                if not chunk:
                    break
                f.write(chunk)
                done += len(chunk)
                if done // CHUNK > shown:
                    prog.update(done // CHUNK - shown)
                    shown = done // CHUNK
        if total is not None and done < total:
            raise Interrupted(f"{url}: transfer interrupted at {done} of {total} bytes")
        if total is None and progress:
            print(f"download: {done / CHUNK:.1f} MiB received (size not announced by the server)",
                  file=sys.stderr, flush=True)
        elif prog.done < prog.total:
            prog.update(prog.total - prog.done)
    return {"bytes": done, "total": total, "resumed_from": start}


# ----------------------------------------------------------------------------
# 2. unpacking
# ----------------------------------------------------------------------------
def _safe_target(root: str, member: str) -> str:
    target = os.path.realpath(os.path.join(root, member))
    if not (target == os.path.realpath(root) or target.startswith(os.path.realpath(root) + os.sep)):
        raise CryoTigerError(f"the archive holds a path outside its folder ({member!r}); refusing it")
    return target


def unpack(archive: str, dest: str) -> None:
    """Unpack a zip or tar ``archive`` into the existing folder ``dest``.
    Zip members are CRC-checked; links and paths leaving ``dest`` are refused.
    Raises CryoTigerError for a damaged or truncated archive."""
    if zipfile.is_zipfile(archive):
        try:
            with zipfile.ZipFile(archive) as z:
                bad = z.testzip()
                if bad is not None:
                    raise CryoTigerError(f"the downloaded archive is damaged (CRC error in {bad})")
                for info in z.infolist():
                    _safe_target(dest, info.filename)
                z.extractall(dest)
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise CryoTigerError(f"the downloaded archive is damaged ({exc})") from None
        return
    if not tarfile.is_tarfile(archive):
        with open(archive, "rb") as f:
            head = f.read(64).decode("latin-1").split("\n")[0].strip()
        raise CryoTigerError(f"the downloaded file is not a complete zip or tar archive (it starts "
                             f"with {head[:40]!r}); it may be an error page or a truncated transfer: "
                             "check the URL (--url)")
    try:
        with tarfile.open(archive) as t:
            members = t.getmembers()
            for m in members:
                if not (m.isfile() or m.isdir()):
                    raise CryoTigerError(f"the archive holds a link or device ({m.name!r}); refusing it")
                _safe_target(dest, m.name)
            t.extractall(dest, members=members)
    except (tarfile.TarError, EOFError, OSError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CryoTigerError(f"the downloaded file is not a complete zip or tar archive ({msg}); "
                             "it may be an error page or a truncated transfer") from None


def locate(root: str, folder: str) -> str:
    """The model folder inside an unpacked archive: the shallowest folder named
    ``folder``; else, when the archive holds a single SavedModel, the top
    folder holding it (or ``root`` itself).

    Raises:
      CryoTigerError: when there is no such folder and not exactly one SavedModel.
    """
    best = None
    pbs = []
    for dirpath, dirnames, filenames in os.walk(root):
        depth = os.path.relpath(dirpath, root).count(os.sep)
        if os.path.basename(dirpath) == folder and (best is None or depth < best[0]):
            best = (depth, dirpath)
        if "saved_model.pb" in filenames:
            pbs.append(dirpath)
    if best:
        return best[1]
    if len(pbs) == 1:
        top = os.listdir(root)
        return os.path.join(root, top[0]) if len(top) == 1 and os.path.isdir(os.path.join(root, top[0])) else root
    raise CryoTigerError(f"the archive holds no folder '{folder}' ({len(pbs)} SavedModels found); "
                         "check the URL (--url)")


# ----------------------------------------------------------------------------
# 3. checking
# ----------------------------------------------------------------------------
def verify_model(folder: str, expect: str = "published") -> dict:
    """Check that ``folder`` holds a FILM SavedModel of configuration ``expect``
    ('published' or 'small'): layout, every variable of that configuration by
    name and shape, no extra FILM variable, parameter count (34,436,667 for
    'published', FILM: Reda et al. 2022).  Uses the engine's model reader
    (film/savedmodel.py); imports TensorFlow.

    Returns:
      {'saved_model': path, 'parameters': n, 'variables': k}.

    Raises:
      CryoTigerError: naming what is wrong (not a SavedModel, another
        parameter count, missing or extra variables).
    """
    from .film.config import FilmConfig
    from .film.network import FilmNet
    from .film.savedmodel import (_weights_by_name, collect_variables, find_saved_model_dir,
                                  import_weights, load_savedmodel)
    try:
        saved = find_saved_model_dir(folder)
        loaded, saved = load_savedmodel(saved)
    except InputError as exc:
        raise CryoTigerError(f"the downloaded model is not a usable SavedModel: {exc}") from None
    weights = _weights_by_name(collect_variables(loaded))
    cfg = FilmConfig.named(expect)
    expected = PUBLISHED_PARAMETERS if expect == "published" else None
    n = int(sum(int(v.size) for v in weights.values()))
    if expected is not None and n != expected:   # checked first: cheap, and the clearest message
        raise CryoTigerError(f"the downloaded model has {n:,} FILM parameters in {len(weights)} "
                             f"variables; the {expect} configuration has {expected:,}")
    net = FilmNet(cfg)
    expected = net.count_params()
    try:
        n_assigned = import_weights(net, weights)
    except InputError as exc:
        raise CryoTigerError(f"the downloaded model does not have the {expect} FILM configuration's "
                             f"variables: {exc}") from None
    if n != expected or len(weights) != n_assigned:
        raise CryoTigerError(f"the downloaded model has {n:,} FILM parameters in {len(weights)} "
                             f"variables; the {expect} configuration has {expected:,} in {n_assigned}")
    return {"saved_model": saved, "parameters": n, "variables": n_assigned}


# ----------------------------------------------------------------------------
# the whole install
# ----------------------------------------------------------------------------
def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def download_model(name: str, output: Optional[str] = None, url: Optional[str] = None,
                   expect: str = "published", retries: int = 3, progress: bool = True,
                   timeout: float = 60.0, log=print) -> dict:
    """Download, check and install the published model ``name`` ('cryotiger' or
    'vimeo') into ``output`` (default $CRYOTIGER_MODELS) as ``<output>/<folder>``.

    ``retries``: automatic resumes after an interrupted transfer (then the
    command fails with a message to run it again, which resumes too).
    Returns {'model': installed folder, 'parameters', 'url', 'sha256', 'seconds'}.
    Raises InputError (bad name/folder) or CryoTigerError (network, archive, check).
    """
    if name not in MODELS:
        raise InputError(f"unknown model '{name}'; choose {' or '.join(MODELS)}")
    if expect not in ("published", "small"):
        raise InputError(f"--expect-config {expect}: choose published or small")
    folder = MODELS[name]
    out = models_dir(output)
    if os.path.exists(out) and not os.path.isdir(out):
        raise InputError(f"{out} exists and is not a folder; give another --output")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the models folder {out} ({exc.strerror}); give another --output") from None
    if not os.access(out, os.W_OK):
        raise InputError(f"the models folder {out} is not writable; give another --output")
    url = url or default_url(name)
    t0 = time.monotonic()
    work = os.path.join(out, f".{folder}.download")
    os.makedirs(work, exist_ok=True)
    part = os.path.join(work, "archive.part")
    attempt = 0
    while True:
        try:
            got = fetch(url, part, progress=progress, timeout=timeout)
            break
        except Interrupted as exc:
            if attempt >= retries:
                raise CryoTigerError(f"{exc}; what arrived is kept in {work}: run the same command "
                                     "again to resume") from None
            attempt += 1
            log(f"download: {exc}; resuming (attempt {attempt} of {retries})")
            time.sleep(min(5.0, 0.5 * attempt))
    if got["resumed_from"]:
        log(f"download: resumed at byte {got['resumed_from']}")
    digest = _sha256(part)
    tmp = tempfile.mkdtemp(prefix=f".{folder}.unpack-", suffix=".part", dir=out)  # cleaned after a kill
    try:
        try:
            unpacked = os.path.join(tmp, "archive")
            os.makedirs(unpacked)
            unpack(part, unpacked)
            found = locate(unpacked, folder)
            model_tmp = os.path.join(tmp, "model")
            os.replace(found, model_tmp)
            log(f"download: checking the model ({expect} FILM configuration) ...")
            check = verify_model(model_tmp, expect)
        except CryoTigerError:
            # A complete transfer that does not hold the model will not get better by resuming.
            shutil.rmtree(work, ignore_errors=True)
            raise
        record = {"name": name, "folder": folder, "url": url, "sha256": digest,
                  "bytes": got["bytes"], "configuration": expect,
                  "parameters": check["parameters"], "variables": check["variables"],
                  "saved_model": os.path.relpath(check["saved_model"], model_tmp),
                  "installed": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        with open(os.path.join(model_tmp, RECORD), "w") as f:
            json.dump(record, f, indent=1)
        dest = os.path.join(out, folder)
        if os.path.lexists(dest):
            os.replace(dest, os.path.join(tmp, "old"))
        os.replace(model_tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    return {"model": dest, "parameters": check["parameters"], "url": url, "sha256": digest,
            "seconds": time.monotonic() - t0}
