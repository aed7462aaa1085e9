"""Output safety shared by every ``cryotiger`` command (issue 9).

One object, :class:`OutputSet`, declares everything a command writes and
everything it reads, and is used as a context manager around the work::

    outs = OutputSet("interpolate",
                     files=[(OUT.mrc, "--output"), (OUT.tlt, "OUT.tlt beside --output"), ...],
                     inputs=[(TS.st, "--input"), (TS.tlt, "--angles"), ...],
                     input_folders=[(MODEL, "--model")])
    with outs:          # checks, locks, cleans stale temporaries: all before any work
        ...             # every writer (atomic_path below) writes the members under temporary names
    # leaving the block without error commits the set; with an error removes the temporaries

The rules (README, section "Bad input" / "Output files"):

1. **Outputs never touch inputs.**  Every output (main file, files written
   beside it, lock files, folders replaced or written into) is compared with
   every input by file identity: ``st_dev``/``st_ino`` for existing files
   (symbolic links followed, hard links found), the resolved real path for
   files that do not exist yet, and letter case (``TS.TLT`` and ``ts.tlt`` are
   one file on case-insensitive file systems).  An input inside a folder the
   command replaces or writes into, and an output inside an input folder (a
   model folder), are refused as well.  Two outputs of one command that are one
   file (``--output x.json`` whose record ``x.json`` is written beside it) are
   refused.  One line, before any work, nothing written.
2. **Output sets are complete or absent.**  Members are written under hidden
   temporary names beside their final names (``.NAME.<token>.part``).  The
   commit removes the old main file (the set's marker) first, renames the
   other members into place, and renames the main file last.  A kill at any
   moment therefore leaves the old complete set, the new complete set, or
   files beside a missing main file, which readers treat as no set.
3. **Temporaries never stay.**  They are removed on any error; after a kill,
   the next run on the same output removes them (it holds the output's lock,
   so they cannot belong to a running command).
4. **One writer per output.**  An exclusive ``fcntl`` lock on ``.NAME.lock``
   beside every output; a second run says so in one line.  Creating the lock
   file is also the test that the folder is writable (read-only file system,
   no permission), before any work.
5. **Disk space.**  :meth:`OutputSet.need_space` compares the bytes a command
   will write with the free space before the work; stacks are preallocated
   (``posix_fallocate``, see engine.formats.mrc.StackWriter) so a full disk is a clean
   error, never a SIGBUS of a memory-mapped file.

``CRYOTIGER_TEST_KILL_AT_COMMIT=k`` (tests only) sends SIGKILL to the process
just before step ``k`` (0-based) of the commit, to check rule 2.
"""
from __future__ import annotations

import contextlib
import errno
import os
import stat
import re
import secrets
import shutil
import signal
import tempfile
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple

from . import CryoTigerError, InputError

TEMP_KINDS = ("part", "work", "old", "export")
KILL_HOOK = "CRYOTIGER_TEST_KILL_AT_COMMIT"
STRICT = "CRYOTIGER_STRICT_OUTPUTS"
SPACE_MARGIN = 1 << 20          # bytes kept free beyond the estimate

_ACTIVE: List["OutputSet"] = []


class OutputError(CryoTigerError):
    """An output cannot be written (full disk, read-only folder, locked by another run)."""


# ----------------------------------------------------------------------------
# names
# ----------------------------------------------------------------------------
def temp_name(final: str, kind: str = "part") -> str:
    """Hidden temporary path beside ``final``: ``.<name>.<pid>-<token>.<kind>``.

    Args:
      final: the final path of an output (file or folder).
      kind: one of ``TEMP_KINDS`` ("part", "work", "old", "export"); the suffix
        by which :func:`is_temporary` and :func:`clean_stale_temporaries` know it.

    Returns:
      An absolute path in the folder of ``final`` (not created).
    """
    folder, base = os.path.split(os.path.abspath(final))
    return os.path.join(folder, f".{base}.{os.getpid()}-{secrets.token_hex(4)}.{kind}")


def lock_name(final: str) -> str:
    """Absolute path of the lock file ``.NAME.lock`` beside the output ``final``
    (rule 4 of this module: one writer per output).
    """
    folder, base = os.path.split(os.path.abspath(final))
    return os.path.join(folder, f".{base}.lock")


def _temp_re(base: str):
    return re.compile(r"^\.%s\.[A-Za-z0-9_-]+\.(%s)$" % (re.escape(base), "|".join(TEMP_KINDS)))


def is_temporary(path: str) -> bool:
    """True for names made by :func:`temp_name` (any final name, any kind);
    only the base name of ``path`` is looked at.
    """
    return re.match(r"^\..+\.[A-Za-z0-9_-]+\.(%s)$" % "|".join(TEMP_KINDS),
                    os.path.basename(path)) is not None


def remove_path(path: str) -> None:
    """Remove a file, link or folder tree; a missing path is fine.

    Folder trees are removed with errors ignored.

    Raises:
      OSError: when a file or link cannot be removed (no permission).
    """
    with contextlib.suppress(FileNotFoundError):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.remove(path)


def clean_stale_temporaries(final: str) -> List[str]:
    """Remove the temporaries of ``final`` left by a killed run.

    Call it while holding the lock of ``final`` (:class:`OutputSet` does), so
    they cannot belong to a running command.

    Returns:
      The paths removed (empty when the folder cannot be listed).
    """
    folder, base = os.path.split(os.path.abspath(final))
    pattern = _temp_re(base)
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        if pattern.match(name):
            remove_path(os.path.join(folder, name))
            removed.append(os.path.join(folder, name))
    return removed


def human_bytes(n: float) -> str:
    """``n`` bytes as text with a decimal unit: "512 bytes", "1.5 MB", "2.0 TB"."""
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n:.1f} TB"


# ----------------------------------------------------------------------------
# identity
# ----------------------------------------------------------------------------
def _real(path: str) -> str:
    return os.path.realpath(os.path.abspath(path))


def _key(path: str) -> str:
    """Comparison key of a not-yet-existing path: real path, letter case folded."""
    return os.path.normcase(_real(path)).casefold()


def _identity(path: str) -> Optional[Tuple[int, int]]:
    try:
        st = os.stat(path)          # follows symbolic links
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _inside(path: str, folder: str) -> bool:
    p, f = _key(path), _key(folder)
    return p != f and p.startswith(f.rstrip(os.sep) + os.sep)


def _tree_files(folder: str, limit: int = 20000) -> Iterable[str]:
    n = 0
    for root, dirs, files in os.walk(folder, followlinks=True):
        for name in files + dirs:
            yield os.path.join(root, name)
            n += 1
            if n >= limit:
                return


class _Input:
    def __init__(self, path: str, role: str, folder: bool = False):
        self.path, self.role, self.folder = path, role, folder
        self.ident = _identity(path)
        self.key = _key(path)
        self.tree = {}
        if folder and os.path.isdir(path):
            for p in _tree_files(path):
                ident = _identity(p)
                if ident is not None:
                    self.tree[ident] = p

    def describe(self) -> str:
        return f"the {self.role} file {self.path}"


def _same_as(path: str, inp: _Input) -> bool:
    ident = _identity(path)
    if ident is not None and inp.ident is not None:
        return ident == inp.ident
    return _key(path) == inp.key


# ----------------------------------------------------------------------------
# the set
# ----------------------------------------------------------------------------
class OutputSet:
    """The files one command writes, checked against its inputs and committed together.

    ``files``: [(path, role)], the set's members; the first is the main file (its
    presence marks a complete set; committed last).  ``inputs``: [(path, role)]
    files read (None paths are skipped).  ``input_folders``: [(path, role)]
    folders read (model folders).  ``folders``: [(path, role, kind)] with kind
    ``"create"`` (a folder holding some members, made when missing),
    ``"scratch"`` (written into freely, e.g. a work folder) or ``"replace"``
    (replaced as a whole, e.g. a model folder).  Roles appear in messages
    ("--output", "OUT.tlt beside --output").  Raises :class:`InputError` for a
    collision or an unusable path, :class:`OutputError` for a read-only folder,
    a full disk or a lock held by another run.
    """

    def __init__(self, command: str, files: Sequence[Tuple[str, str]] = (),
                 inputs: Sequence[Tuple[Optional[str], str]] = (),
                 input_folders: Sequence[Tuple[Optional[str], str]] = (),
                 folders: Sequence[Tuple[Optional[str], str, str]] = ()):
        self.command = command
        self._spelled = [(p, r) for p, r in files if p]     # as given: 'out/' is checked as such
        self.files = [(os.path.abspath(p), r) for p, r in files if p]
        self.inputs = [(p, r) for p, r in inputs if p]
        self.input_folders = [(p, r) for p, r in input_folders if p]
        self.folders = [(os.path.abspath(p), r, k) for p, r, k in folders if p]
        self._temps = {}            # final -> temp path
        self._temp_dirs: List[Tuple[str, bool]] = []
        self._locks = []            # (path, fd)
        self._created: List[str] = []
        self.committed = False

    # -- checks --------------------------------------------------------------
    def check(self) -> None:
        """All collision and path checks of this module's rule 1; no side effects.

        Raises:
          InputError: when an output names a folder ('out/'), is (or is inside) an
            input, is written twice by this command, when a folder written into or
            replaced is or holds an input, exists as a file or has no parent
            folder, or when an output file's folder is missing or it is not a
            regular file.
        """
        inputs = [_Input(p, r) for p, r in self.inputs] + \
                 [_Input(p, r, folder=True) for p, r in self.input_folders]
        outputs = list(self.files) + [(lock_name(p), f"lock file of {r}") for p, r in self.files]
        # 0. a file name, not a folder spelling ('out/'), for the main output first
        for path, role in self._spelled:
            base = os.path.basename(path)
            if path.endswith(("/", os.sep)) or base in ("", ".", ".."):
                raise InputError(f"{path} ({role}) names a folder, not a file; give a file name")
        # 1. each output file against each input
        for path, role in outputs:
            for inp in inputs:
                if _same_as(path, inp):
                    raise InputError(f"{path} ({role}) is {inp.describe()}; writing it would "
                                     f"replace the input: choose another output name")
                if inp.folder:
                    if _inside(path, inp.path) or _identity(path) in inp.tree:
                        raise InputError(f"{path} ({role}) is inside {inp.describe()}; writing it "
                                         "would change the input folder: choose another output name")
        # 2. outputs among themselves
        seen = {}
        for path, role in outputs:
            k = _key(path)
            if k in seen:
                other = seen[k]
                raise InputError(f"{path} would be written twice (as {other} and as {role}); "
                                 "choose another output name")
            seen[k] = role
        # 3. folders written into or replaced
        created = {f for f, _, k in self.folders if k == "create"}
        for folder, role, kind in self.folders:
            for inp in inputs:
                if _same_as(folder, inp) or (inp.folder and _inside(folder, inp.path)):
                    raise InputError(f"{folder} ({role}) is or contains {inp.describe()}; "
                                     "choose another folder")
                if kind != "create" and (_inside(inp.path, folder) or
                                         (os.path.isdir(folder) and self._hard_linked(inp, folder))):
                    verb = "replaced" if kind == "replace" else "written into"
                    raise InputError(f"{inp.describe()} is inside {folder} ({role}), which is {verb} "
                                     "by this command; move the input or choose another folder")
            if os.path.exists(folder) and not os.path.isdir(folder):
                raise InputError(f"{folder} ({role}) exists and is not a folder; choose another name")
            parent = os.path.dirname(folder)
            if not os.path.isdir(parent) and parent not in created:
                raise InputError(f"folder {parent} (holding {role}) does not exist; create it first "
                                 "or choose another path")
        # 4. each output file: not a folder, its folder exists
        for path, role in self.files:
            if os.path.isdir(path):
                raise InputError(f"{path} ({role}) is a folder; give a file name")
            if os.path.exists(path) and not stat.S_ISREG(os.stat(path).st_mode):
                raise InputError(f"{path} ({role}) exists and is not a regular file (a device, FIFO "
                                 "or socket): it would be replaced; choose another output name")
            folder = os.path.dirname(path)
            if folder in created:
                continue
            if not os.path.exists(folder):
                raise InputError(f"folder {folder} (of {role} {os.path.basename(path)}) does not "
                                 "exist; create it first or choose another path")
            if not os.path.isdir(folder):
                raise InputError(f"{folder} (of {role} {os.path.basename(path)}) is not a folder")

    @staticmethod
    def _hard_linked(inp: _Input, folder: str) -> bool:
        if inp.ident is None or inp.folder:
            return False
        return any(_identity(p) == inp.ident for p in _tree_files(folder, limit=5000))

    # -- context -------------------------------------------------------------
    def __enter__(self) -> "OutputSet":
        self.check()
        try:
            for folder, role, kind in self.folders:
                if kind == "create" and not os.path.isdir(folder):
                    self._mkdir(folder, role)
            finals = [p for p, _ in self.files] + [f for f, _, k in self.folders if k != "create"]
            for final in sorted(set(finals)):
                self._lock(final)
            for final in finals:
                clean_stale_temporaries(final)
        except BaseException:
            self._release(error=True)
            raise
        _ACTIVE.append(self)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self in _ACTIVE:
            _ACTIVE.remove(self)
        if isinstance(exc, OSError) and not exc.filename and self.files:
            exc.filename = self.files[0][0]     # name the output, not the working folder
        try:
            if exc_type is None and not self.committed:
                self.commit()
        except BaseException:
            self._release(error=True)
            raise
        self._release(error=exc_type is not None)
        return False

    def _mkdir(self, folder: str, role: str) -> None:
        try:
            os.mkdir(folder)
        except OSError as exc:
            raise write_error(exc, folder, role) from None
        self._created.append(folder)

    def _lock(self, final: str) -> None:
        import fcntl
        path = lock_name(final)
        for _ in range(20):
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as exc:
                raise write_error(exc, final, "output") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise OutputError(f"{final} is being written by another cryotiger run (lock "
                                      f"{path}); wait for it to finish or choose another output "
                                      "name") from None
                if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                    # a file system without locks (some network mounts): the file
                    # still marks the output as busy for the reader, no lock is held
                    self._locks.append((path, os.open(path, os.O_RDWR)))
                    return
                raise
            # The file may have been removed by the previous holder between open and lock.
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except OSError:
                same = False
            if same:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
                    os.write(fd, f"{os.getpid()} cryotiger {self.command}\n".encode())
                self._locks.append((path, fd))
                return
            os.close(fd)
        raise OutputError(f"{final}: could not take the lock {path}; try again")

    def _release(self, error: bool) -> None:
        if error:
            for tmp in list(self._temps.values()):
                remove_path(tmp)
            self._temps.clear()
        for d, keep in self._temp_dirs:
            if not keep:
                remove_path(d)
        self._temp_dirs = []
        for path, fd in self._locks:
            with contextlib.suppress(OSError):
                os.remove(path)               # removed while still held: see _lock
            with contextlib.suppress(OSError):
                os.close(fd)
        self._locks = []
        if error:
            for folder in reversed(self._created):
                with contextlib.suppress(OSError):
                    os.rmdir(folder)          # only when still empty (locks removed first)
        self._created = []

    # -- members -------------------------------------------------------------
    def is_member(self, final: str) -> bool:
        """True when ``final`` (any spelling of the path) is one of the set's files."""
        return os.path.abspath(final) in {p for p, _ in self.files}

    def temp(self, final: str) -> str:
        """The temporary path where member ``final`` is written (made on first call,
        then the same path; renamed to ``final`` by :meth:`commit`).

        Raises:
          RuntimeError: when ``final`` is not a declared member (a programming error).
        """
        final = os.path.abspath(final)
        if not self.is_member(final):
            raise RuntimeError(f"{final} is not an output declared by cryotiger {self.command}")
        if final not in self._temps:
            self._temps[final] = temp_name(final)
        return self._temps[final]

    def temp_folder(self, keep: bool = False) -> str:
        """A new hidden folder beside the main file, removed when the set closes
        (unless ``keep``) and by the next run after a kill.

        Returns:
          The folder's absolute path.

        Raises:
          OutputError: when it cannot be made (full disk, read-only folder, no
            permission; InputError when its folder is missing): see :func:`write_error`.
        """
        main = self.files[0][0] if self.files else self.folders[0][0]
        path = temp_name(main, "work")
        try:
            os.mkdir(path)
        except OSError as exc:
            raise write_error(exc, main, "output") from None
        self._temp_dirs.append((path, keep))
        return path

    def adopt(self, final: str, source: str) -> None:
        """Make the file ``source`` the content of member ``final`` (moved to its
        temporary name, or copied across file systems; renamed into place at the commit).

        Raises:
          RuntimeError: when ``final`` is not a member.
          OSError: when the move fails.
        """
        move_file(source, self.temp(final))

    def allows(self, path: str) -> bool:
        """True when ``path`` may be written directly while this set is open:
        inside a scratch folder or a temporary folder of the set.
        """
        for folder, _, kind in self.folders:
            if kind == "scratch" and (_inside(path, folder)):
                return True
        return any(_inside(path, d) for d, _ in self._temp_dirs)

    def need_space(self, nbytes: float, what: str = "") -> None:
        """Check before the work that the output's file system holds ``nbytes``.

        Args:
          nbytes: bytes the command will write.
          what: what needs them, for the message (default: the main file's name).

        Raises:
          OutputError: when the folder of the main file (or of the first folder)
            has less than ``nbytes`` plus 1 MiB (``SPACE_MARGIN``) free.
        """
        folder = os.path.dirname(self.files[0][0]) if self.files else self.folders[0][0]
        check_space(folder, nbytes, what or os.path.basename(self.files[0][0]))

    # -- commit --------------------------------------------------------------
    def commit(self) -> None:
        """Put the members in place: old main file removed first, the others
        renamed, the main file renamed last (this module's rule 2).  Called by
        ``__exit__`` when the block ends without error.

        Raises:
          RuntimeError: when the main file was never written (nothing committed).
          OSError: when a rename fails.
        """
        if not self.files:
            self.committed = True
            return
        main = self.files[0][0]
        others = [p for p, _ in self.files[1:]]
        steps = [("remove", main, None)]
        steps += [("replace", p, self._temps.get(p)) for p in others]
        steps.append(("replace", main, self._temps.get(main)))
        if self._temps.get(main) is None or not os.path.exists(self._temps[main]):
            raise RuntimeError(f"{main}: the main output was never written; nothing committed")
        hook = os.environ.get(KILL_HOOK)
        for k, (action, final, tmp) in enumerate(steps):
            if hook is not None and hook.strip() == str(k):
                os.kill(os.getpid(), signal.SIGKILL)
            if action == "remove" or tmp is None or not os.path.exists(tmp):
                with contextlib.suppress(FileNotFoundError):
                    if not os.path.isdir(final):
                        os.remove(final)
            else:
                os.replace(tmp, final)
        self._temps.clear()
        self.committed = True


# ----------------------------------------------------------------------------
# helpers used by writers (engine.formats, plots, export, ...) and the command line
# ----------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_path(final_path: str) -> Iterator[str]:
    """Write ``final_path`` atomically: yield a temporary path beside it (a hidden
    ``.NAME.<random>.part`` in the same folder, made with the usual permissions),
    rename it to ``final_path`` when the block ends without error, delete it on
    any error (the exception propagates).  Every writer of the engine writes
    through here, so a crash never leaves a half-written file under the final name.

    Inside an open :class:`OutputSet` that declares ``final_path``
    the set's temporary path is yielded instead and the set renames it when it
    commits (all files of the set together)."""
    managed = active_temp(final_path)
    if managed is not None:
        yield managed
        return
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


def active_temp(final: str) -> Optional[str]:
    """The temporary path of ``final`` when an open OutputSet declares it, else None
    (the writer then writes ``final`` itself).

    Raises:
      RuntimeError: with CRYOTIGER_STRICT_OUTPUTS=1 (tests), when a set is open
        and ``final`` is neither declared nor inside a scratch or temporary folder.
    """
    for s in reversed(_ACTIVE):
        if s.is_member(final):
            return s.temp(final)
    if _ACTIVE and os.environ.get(STRICT) and not is_temporary(os.path.dirname(os.path.abspath(final))):
        if not any(s.allows(final) for s in _ACTIVE):
            raise RuntimeError(f"{final}: written by cryotiger {_ACTIVE[-1].command} but not "
                               "declared in its OutputSet")
    return None


def active_temp_folder(final: str, keep: bool = False) -> str:
    """A temporary work folder for the output ``final``: the open set's (removed
    with it unless ``keep``), else a new hidden folder beside ``final`` that the
    caller removes.

    Raises:
      OutputError: see :meth:`OutputSet.temp_folder` (within a set).
      OSError: when the folder cannot be made (no set open).
    """
    for s in reversed(_ACTIVE):
        if s.is_member(final):
            return s.temp_folder(keep=keep)
    path = temp_name(final, "work")
    os.mkdir(path)
    return path


def place(final: str, source: str) -> None:
    """Move the finished file ``source`` to ``final``: through the open set that
    declares ``final`` (renamed when the set commits), else at once.

    Raises:
      RuntimeError: with CRYOTIGER_STRICT_OUTPUTS=1, for an undeclared output
        while a set is open.
      OSError: when the move fails.
    """
    for s in reversed(_ACTIVE):
        if s.is_member(final):
            s.adopt(final, source)
            return
    if os.environ.get(STRICT) and _ACTIVE:
        active_temp(final)          # raises for an undeclared output
    move_file(source, final)


def move_file(source: str, dest: str) -> None:
    """Move the file ``source`` to ``dest`` (a rename; copied then removed across
    file systems, where a rename is not possible).

    Raises:
      OSError: when the rename fails for another reason than crossing file
        systems, or the copy fails.
    """
    try:
        os.replace(source, dest)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        shutil.copyfile(source, dest)
        os.remove(source)


def check_space(folder: str, nbytes: float, what: str) -> None:
    """Refuse to start when ``folder``'s file system cannot hold ``nbytes``.

    Args:
      folder: a folder on the file system to check (unreadable: no check).
      nbytes: bytes to be written.
      what: what is written, for the message.

    Raises:
      OutputError: when less than ``nbytes`` + ``SPACE_MARGIN`` (1 MiB) is free.
    """
    try:
        st = os.statvfs(folder)
    except OSError:
        return
    free = st.f_bavail * st.f_frsize
    if nbytes + SPACE_MARGIN > free:
        raise OutputError(f"no space left on device at {folder}: {what} needs "
                          f"{human_bytes(nbytes)}, {human_bytes(free)} free; free some space or "
                          "write the output elsewhere")


def preallocate(fd: int, size: int, path: str) -> None:
    """Reserve ``size`` bytes of the open file ``fd`` (so a memory map never
    hits a full disk: SIGBUS).  A file system without preallocation is left as is.

    Args:
      fd: an open file descriptor.
      size: bytes to reserve from offset 0.
      path: the file's (final) path, for the message.

    Raises:
      OutputError: when the disk is full or the quota exceeded.
      OSError: for any other failure of ``posix_fallocate``.
    """
    try:
        os.posix_fallocate(fd, 0, int(size))
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OutputError(f"no space left on device at {os.path.dirname(os.path.abspath(path))}: "
                              f"{os.path.basename(path)} needs {human_bytes(size)}; free some space "
                              "or write the output elsewhere") from None
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS,
                             getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)):
            raise


def write_error(exc: OSError, path: str, role: str = "output") -> CryoTigerError:
    """One-line error for an OSError met while writing ``path`` (returned, not raised).

    Args:
      exc: the OSError.
      path: the path being written.
      role: what it is, for the message ("output", "--output").

    Returns:
      OutputError for a full disk, quota, read-only file system, no permission
      or anything else; InputError for a missing folder or a path that is a folder.
    """
    folder = os.path.dirname(os.path.abspath(path))
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return OutputError(f"no space left on device at {folder}: cannot write {path}; free some "
                           "space or write the output elsewhere")
    if exc.errno == errno.EROFS:
        return OutputError(f"cannot write {path}: read-only file system at {folder}; write the "
                           "output elsewhere")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return OutputError(f"cannot write {path}: permission denied in {folder} (read-only folder?); "
                           "write the output elsewhere")
    if exc.errno == errno.ENOENT:
        return InputError(f"cannot write {path}: folder {folder} does not exist; create it first")
    if exc.errno == errno.EISDIR:
        return InputError(f"cannot write {path}: it is a folder; give a file name")
    return OutputError(f"cannot write {path} ({role}): {exc.strerror or exc}")


def os_error_line(exc: OSError) -> str:
    """The CLI's one line for an OSError that reached it: the final file named
    (never its temporary name), full disk / read-only / permission worded as
    :func:`write_error`, else "PATH: strerror".
    """
    path = exc.filename or ""
    if path and is_temporary(path):
        # name the final file, not the temporary one
        base = os.path.basename(path)
        m = re.match(r"^\.(.+)\.[A-Za-z0-9_-]+\.(%s)$" % "|".join(TEMP_KINDS), base)
        if m:
            path = os.path.join(os.path.dirname(path), m.group(1))
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM):
        return str(write_error(exc, path or ".", "output"))
    return f"{path + ': ' if path else ''}{exc.strerror or exc}"


__all__ = ["OutputSet", "OutputError", "temp_name", "lock_name", "clean_stale_temporaries",
           "atomic_path", "active_temp", "active_temp_folder", "check_space", "preallocate", "write_error",
           "os_error_line", "is_temporary", "remove_path", "place"]
