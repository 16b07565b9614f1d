"""The stage runner: the one way a stage opens its inputs, checks its cache and commits its output.

Every stage does the same five things, and doing them by hand is how a stage forgets an input::

    run = StageRun(store, "audit", "toxicity", ToxicityAuditRecord, force=force)
    prompts = run.file(config.prompts, kind="prompt_set")        # hashed into the fingerprint
    model = run.model("train:nift-hybrid", resolve_base)          # content hash of the weights
    if (done := run.cached(config.model_dump())) is not None:    # fingerprint of everything above
        return done
    ...                                                            # the work; run.progress resumes it
    return run.commit(ToxicityAuditRecord(**run.header(), ...), {"samples.jsonl": rows})

* Inputs: :meth:`file`, :meth:`tree` and :meth:`model` hash content, never paths or mtimes, and add an
  :class:`InputRef`; :meth:`record` pins another stage's record by the hash of its bytes. An input that is
  opened any other way is simply not an input, which is why stages open them only here. :meth:`read` gives a
  hashed file's bytes and refuses them if the file changed since it was hashed, so the work reads what the
  fingerprint names.
* Cache: :meth:`cached` fixes the fingerprint (inputs + config) and returns the finished record when it
  matches. A folder holding a record made from other inputs is replaced (``on_change="replace"``) or, for
  stages whose output is expensive or referenced by later stages, refused unless ``--force``
  (``on_change="refuse"``).
* Lock: from :meth:`cached` to the end of the commit the run holds an exclusive lock on ``.<name>.lock`` beside
  its folder, so a second process building the same folder is turned away before it does any work, not after
  (:class:`_StageLock`). A cache hit, a commit and a refusal release it; a stage's entry point, decorated with
  :func:`stage_entry`, releases what its runs still hold when it returns or raises (a stage refused at a bad
  input after its cache check). A run made outside one releases it when it is garbage-collected, or when the
  next run of the same folder in this process takes it over.
* Resume: :attr:`progress` keeps finished units of work (one model's outputs, say) under
  ``<stage>/_work/<name>-<fingerprint>/`` so a crashed stage restarts at the next unit.
* Commit: :meth:`commit` hashes every input file again (one read by path since, by a library, must still be
  the bytes the fingerprint names, or nothing is written), then writes the artifacts and the record into a
  temp folder and renames it into place, so readers see the old output or the new one, never half of one. A
  stage whose folder also holds state that outlives one record (the review stage's label store) uses
  :meth:`commit_in_place`: each file atomically, the record last.
* Signature: when ``NIFT_RECORD_KEY`` holds a key (:mod:`harness.core.signing`), the commit writes ``record.sig``
  beside the record, the HMAC of its exact bytes, in the same rename as the record (:meth:`commit`), or, in
  place, so that the signature on disk vouches for whichever record is there at every moment
  (:meth:`commit_in_place`). A run with no key writes no signature, and leaves no stale one. A run with a key
  takes no record its signature does not vouch for as a cache hit (unsigned, another key's, edited): it rebuilds
  it, never signing bytes it did not write.
"""

from __future__ import annotations

import contextlib
import contextvars
import fcntl
import functools
import json
import os
import re
import shutil
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Generic, Literal, ParamSpec, TypeVar

from pydantic import BaseModel

from harness.core.assets import resolve_asset
from harness.core.errors import InputError
from harness.core.log import get_logger
from harness.core.records import (
    InputRef,
    Record,
    new_record_id,
    result_code_versions,
    sha256_bytes,
    sha256_file,
    stage_fingerprint,
)
from harness.core.store import (
    RECORD_FILE,
    RunStore,
    atomic_dir,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_jsonl,
    atomic_write_text,
    completed_record,
    parse_record,
    read_bytes,
    remove_leftovers,
)
from harness.core.signing import SIGNATURE_FILE, record_key, signature_problem, signature_text, valid_digest

R = TypeVar("R", bound=Record)
#: ``resolve(spec, store, allow_pickle) -> (ResolvedModel, InputRef)``; ``harness.train.record.resolve_base``.
ModelResolver = Callable[..., tuple[Any, InputRef]]


def file_identity(path: Path) -> tuple[int, int, int, int, int]:
    """Device, inode, size, mtime and ctime of ``path``. The kernel moves a file's ctime on every write, rename
    or metadata change, and no program can set it back: a file whose identity is unchanged has not been
    written since, even one changed and then put back byte for byte."""
    stat = path.stat()
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns


def _record_identity(folder: Path) -> tuple[int, int, int, int, int] | None:
    """:func:`file_identity` of ``folder``'s record.json; None when it has none."""
    try:
        return file_identity(folder / RECORD_FILE)
    except FileNotFoundError:
        return None


def tree_sha256(folder: Path, pattern: str = "**/*") -> str:
    """Content hash of a folder: every file's relative path and content hash, in sorted order."""
    return _tree_hashes(folder, pattern)[0]


def _tree_hashes(folder: Path, pattern: str) -> tuple[str, dict[Path, str]]:
    """:func:`tree_sha256` and the content hash of each file it covers."""
    hashes = {p: sha256_file(p) for p in sorted(p for p in folder.glob(pattern) if p.is_file())}
    listing = "\n".join(f"{p.relative_to(folder).as_posix()}:{digest}" for p, digest in hashes.items())
    return sha256_bytes(listing.encode()), hashes


class WorkProgress:
    """Finished units of an interrupted stage, keyed by the stage's fingerprint (another config or input never
    reads them). Each unit is written atomically; the folder goes once the record is committed."""

    def __init__(self, folder: Path):
        self.folder = folder

    def _path(self, unit: str) -> Path:
        return self.folder / f"{re.sub(r'[^A-Za-z0-9._-]', '_', unit)}.json"

    def load(self, unit: str) -> dict[str, Any] | None:
        path = self._path(unit)
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

    def save(self, unit: str, payload: dict[str, Any]) -> None:
        atomic_write_json(self._path(unit), payload)

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class _StageLock:
    """This process's hold on the lock file beside one stage folder: an exclusive ``flock`` on ``.<name>.lock``,
    taken without waiting (a holder can be hours into its work), with the holder's pid written in the file for
    the message of the run turned away. The kernel drops a flock when its holder dies, even by ``kill -9``, so a
    crashed run never leaves the folder locked.

    A process holds each lock once, for the latest :class:`StageRun` of that folder (its ``owner``): a flock
    would also turn away this process's own next run of the folder (a ``--force`` rerun, a test) while an earlier
    run that raised is still alive in a traceback. Such a run is over, and the next one in the same thread takes
    the lock over: runs in one thread are one after the other (and the commit still checks the record). A run in
    another thread is turned away while the holder's thread lives, as another process's is.

    A run that ends with no folder (its stage stopped at a bad input, say) removes the lock file and the empty
    folders it made for it: a stage refused before its work writes nothing. A run that locks a file checks that
    the path still names it, and locks again if a holder removed it meanwhile."""

    #: Lock file path -> the hold on it, for every stage lock this process holds.
    held: dict[Path, _StageLock] = {}
    #: Reentrant: the finaliser of a dead run (:meth:`StageRun.release`) can run in this thread whenever the
    #: garbage collector does, inside :meth:`take` or :meth:`release` too.
    guard = threading.RLock()

    def __init__(self, fd: int, owner: object, folder: Path, made: list[Path]):
        #: ``made``: the lock file and the folders above it that this hold created, deepest first.
        self.fd, self.owner, self.folder, self.made = fd, owner, folder, made
        self.thread = threading.get_ident()

    @classmethod
    def take(cls, path: Path, owner: object, folder: Path) -> None:
        """Hold the lock at ``path`` for ``owner``, or raise :class:`InputError` naming ``folder`` and the
        holder when another process holds it."""
        with cls.guard:
            if (hold := cls.held.get(path)) is not None:
                me = threading.get_ident()
                if hold.thread != me and hold.thread in {t.ident for t in threading.enumerate()}:
                    raise InputError(f"{folder}: another nift-gate run in this process (thread {hold.thread}) is "
                                     f"building this folder; nothing was done: rerun once it has finished")
                hold.owner, hold.thread = owner, me
                return
            made = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
            while True:
                path.parent.mkdir(parents=True, exist_ok=True)
                try:
                    fd, created = cls._open(path)
                except FileNotFoundError:  # removed between the two opens by a holder that released
                    continue
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    with contextlib.suppress(FileNotFoundError):
                        if os.path.samestat(os.fstat(fd), os.stat(path)):
                            break
                except BlockingIOError:
                    holder = cls._holder(fd)
                    os.close(fd)
                    raise InputError(f"{folder}: another nift-gate run{holder} is building this folder; nothing "
                                     f"was done: rerun once it has finished (or stop it)") from None
                except BaseException:
                    os.close(fd)
                    raise
                os.close(fd)  # a file its holder removed as it released: lock the one at the path now
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            cls.held[path] = cls(fd, owner, folder, [path, *made] if created else made)

    @staticmethod
    def _open(path: Path) -> tuple[int, bool]:
        """A descriptor of the lock file, and whether this call created it."""
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644), True
        except FileExistsError:
            return os.open(path, os.O_RDWR | os.O_CLOEXEC), False

    @staticmethod
    def _holder(fd: int) -> str:
        pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return f" (pid {pid})" if pid.isdigit() else ""

    @classmethod
    def owns(cls, path: Path, owner: object) -> bool:
        hold = cls.held.get(path)
        return hold is not None and hold.owner is owner

    @classmethod
    def release(cls, path: Path, owner: object) -> None:
        """Give the lock up, if ``owner`` still holds it (a later run of the folder may have taken it over)."""
        with cls.guard:
            hold = cls.held.get(path)
            if hold is None or hold.owner is not owner:
                return
            del cls.held[path]
            try:
                if not hold.folder.exists():  # nothing committed: the run folder is left as this run found it
                    if path in hold.made:  # the lock file this hold created, still locked
                        with contextlib.suppress(OSError):
                            os.unlink(path)
                    # then the stage folder if that left it empty (made by this hold, or by the stage before its
                    # cache check: bench's task files, discarded at a refused task name), and the empty folders
                    # above it that this hold made
                    for folder in dict.fromkeys([path.parent, *(p for p in hold.made if p != path)]):
                        with contextlib.suppress(OSError):
                            os.rmdir(folder)
                fcntl.flock(hold.fd, fcntl.LOCK_UN)
            finally:
                os.close(hold.fd)

    @classmethod
    def forget_in_child(cls) -> None:
        """After ``fork``: the child (a data loader worker, say) shares the parent's lock without holding it.
        Its copies are closed without unlocking, which would unlock the parent's too; a parent killed then
        leaves the folder unlocked however long the child lives."""
        cls.guard = threading.RLock()
        for hold in cls.held.values():
            with contextlib.suppress(OSError):
                os.close(hold.fd)
        cls.held = {}


os.register_at_fork(after_in_child=_StageLock.forget_in_child)


#: Where launchers put a process's global rank: torchrun and ``accelerate launch``, MPICH/Intel MPI, Open MPI,
#: MVAPICH (those :func:`harness.core.lmeval.data_parallel_state` reads the world size from).
_RANK_VARIABLES = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")


def _helper_rank() -> bool:
    """A rank other than 0 of a multi-process run (``accelerate launch``, ``torchrun``, ``mpirun``): rank 0 builds
    and writes the folder and holds its lock, and the other ranks do their share of the work without it."""
    return any(os.environ.get(name, "0").strip() not in ("", "0") for name in _RANK_VARIABLES)


P = ParamSpec("P")
T = TypeVar("T")
#: The runs made during the current :func:`stage_entry` call (None outside one).
_RUNS_IN_CALL: contextvars.ContextVar[list[StageRun[Any]] | None] = contextvars.ContextVar("stage_runs", default=None)


def stage_entry(function: Callable[P, T]) -> Callable[P, T]:
    """Decorate a stage's entry point: every :class:`StageRun` made during the call gives its folder's lock up
    when the call ends, by a return or a raise (a run that committed, or found its record up to date, gave it up
    already). Without it a stage refused at a bad input after its cache check would hold the lock, and leave the
    lock file and the folders made for it, until the garbage collector frees the run, which the traceback keeps
    alive. A function decorated already is returned as it is."""
    if getattr(function, "releases_stage_locks", False):
        return function

    @functools.wraps(function)
    def call(*args: P.args, **kwargs: P.kwargs) -> T:
        runs: list[StageRun[Any]] = []
        token = _RUNS_IN_CALL.set(runs)
        try:
            return function(*args, **kwargs)
        finally:
            _RUNS_IN_CALL.reset(token)
            for run in runs:
                run.release()
    call.releases_stage_locks = True  # type: ignore[attr-defined]
    return call


class StageRun(Generic[R]):
    """One run of one stage into ``<run>/<stage>/<name>/``."""

    def __init__(self, store: RunStore, stage: str, name: str, record_type: type[R], *, force: bool = False,
                 on_change: Literal["replace", "refuse"] = "replace", refusal: str | None = None,
                 label: str | None = None, version: str = "1", hold_lock: bool = True):
        """``refusal`` words the error when ``on_change="refuse"`` keeps a folder (default: a generic one).
        ``version``: the stage's code version, in the fingerprint with the result libraries' versions; bump it
        when the stage's output changes for the same inputs and config. ``hold_lock=False``: a run that only
        fixes its inputs and fingerprint and writes its folder by other means under a lock of its own (the gate,
        under the registry lock) takes no lock at :meth:`cached`, so concurrent runs of it are not turned away;
        a commit of it still takes the lock while it writes."""
        self.store, self.stage, self.name, self.record_type = store, stage, name, record_type
        self.version = version
        self.force, self.on_change, self.refusal = force, on_change, refusal
        self.folder = store.stage_dir(stage, name)
        self.inputs: list[InputRef] = []
        #: Content hash of every file opened by :meth:`file` or :meth:`tree`, by resolved path (see :meth:`read`).
        self.hashed: dict[Path, str] = {}
        #: :func:`file_identity` of every input file (those above and a model's files) when it was hashed.
        self.identities: dict[Path, tuple[int, int, int, int, int]] = {}
        self.config: dict[str, Any] | None = None
        self.fingerprint: str | None = None
        #: :func:`file_identity` of the folder's record.json when :meth:`cached` looked (None: there was none).
        self.found: tuple[int, int, int, int, int] | None = None
        self.log = get_logger(label or f"{stage}.{name}")
        self.hold_lock = hold_lock
        #: The record signing key, read now: a key too short to use stops the stage before its work, not at its
        #: commit.
        self.signing_key = record_key()
        self.lock_path = self.folder.parent / f".{self.folder.name}.lock"
        # The lock's owner is this token, not the run: the finaliser that releases it must not keep the run alive.
        self._token = object()
        weakref.finalize(self, _StageLock.release, self.lock_path, self._token)
        if (runs := _RUNS_IN_CALL.get()) is not None:
            runs.append(self)

    # --- inputs -------------------------------------------------------------------------------------------

    def add(self, ref: InputRef) -> InputRef:
        """An input already pinned by content (a teacher endpoint, a model the caller resolved)."""
        if self.fingerprint is not None:
            raise RuntimeError(f"{self.stage}/{self.name}: input {ref.id} added after the fingerprint was fixed")
        self.inputs.append(ref)
        return ref

    def file(self, path: str | Path, kind: str, id: str | None = None) -> Path:
        """An input file (``embedded:`` names a shipped one), hashed by content; missing files are an error."""
        resolved = resolve_asset(str(path))
        if not resolved.is_file():
            raise InputError(f"{resolved}: {kind} file not found")
        before = self._identity(resolved)
        digest = sha256_file(resolved)
        self._steady(resolved, before)
        self.add(InputRef(kind=kind, id=id or str(path), sha256=digest))
        self.hashed[resolved.resolve()] = digest
        return resolved

    def tree(self, path: str | Path, kind: str, id: str | None = None, pattern: str = "**/*") -> Path:
        """An input folder (task YAMLs, a corpus of files), hashed over every file's path and content."""
        resolved = resolve_asset(str(path))
        if not resolved.is_dir():
            raise InputError(f"{resolved}: {kind} folder not found")
        before = {p: self._identity(p) for p in resolved.glob(pattern) if p.is_file()}
        digest, files = _tree_hashes(resolved, pattern)
        if set(files) != set(before):
            raise self._changed(resolved, "had files added or removed", "rerun when it no longer changes")
        for file, identity in before.items():
            self._steady(file, identity)
        self.add(InputRef(kind=kind, id=id or str(path), sha256=digest))
        self.hashed.update({p.resolve(): h for p, h in files.items()})
        return resolved

    def read(self, path: str | Path) -> bytes:
        """The bytes of a file opened by :meth:`file` or :meth:`tree`, exactly the ones its content hash (and so
        the fingerprint) covers: a file edited after it was hashed is an error, not a silent mix of two
        versions. A stage reads its input files through this, parsing the bytes rather than the path."""
        resolved = Path(path).resolve()
        if resolved not in self.hashed:
            raise RuntimeError(f"{self.stage}/{self.name}: {path} was not opened with file() or tree()")
        data = read_bytes(path, "input file")
        if sha256_bytes(data) != self.hashed[resolved]:
            raise self._changed(path, "changed", "rerun when it no longer changes")
        return data

    def _changed(self, path: Path | str, how: str, then: str) -> InputError:
        return InputError(f"{path}: {how} while {self.stage}/{self.name} was running (after its content hash was "
                          f"taken); {then}")

    def _identity(self, path: Path) -> tuple[int, int, int, int, int]:
        try:
            return file_identity(path)
        except FileNotFoundError:
            raise self._changed(path, "removed", "rerun when it is back") from None

    def _steady(self, path: Path, before: tuple[int, int, int, int, int]) -> None:
        """Keep ``path``'s identity from before its hash, refusing a file written to while it was hashed (the
        hash could mix two versions)."""
        if self._identity(path) != before:
            raise InputError(f"{path}: written to while {self.stage}/{self.name} hashed it; rerun when it no "
                             "longer changes")
        self.identities[path.resolve()] = before

    def model(self, spec: str, resolve: ModelResolver, allow_pickle: bool = False):
        """A model spec resolved by ``resolve`` (content hash of its files); returns the ResolvedModel. The
        libraries that load it read its files by path later; the commit checks they were not written since."""
        from harness.core.models import model_files

        resolved, ref = resolve(spec, self.store, allow_pickle)
        self.add(ref)
        for file in model_files(resolved):
            self.identities.setdefault(file.resolve(), self._identity(file))
        return resolved

    def record(self, path: Path, cls: type[Record], kind: str | None = None) -> Record:
        """Another stage's record, pinned by the hash of its bytes (an edited record is another input)."""
        path = path / RECORD_FILE if path.is_dir() else path
        if not path.exists():
            raise InputError(f"{path}: no such record")
        data = read_bytes(path, "record")
        record = parse_record(data, path, cls)  # the bytes that were hashed, not a second read
        self.add(InputRef(kind=kind or record.kind, id=record.record_id, sha256=sha256_bytes(data)))
        return record

    # --- cache ---------------------------------------------------------------------------------------------

    def cached(self, config: dict[str, Any] | BaseModel) -> R | None:
        """Fix the fingerprint from the inputs so far and ``config``; the finished record if it matches.

        From here the run holds the folder's lock (released by a cache hit, a refusal and the commit): another
        nift-gate process building the folder now is refused here, before any work, with its pid. A run made with
        ``hold_lock=False`` and a helper rank take no lock here (the commit takes it while it writes)."""
        self.config = config.model_dump() if isinstance(config, BaseModel) else dict(config)
        self.fingerprint = stage_fingerprint(self.inputs, self.config, result_code_versions(self.version))
        if self.hold_lock and not _helper_rank():
            _StageLock.take(self.lock_path, self._token, self.folder)
        try:
            return self._cached()
        except BaseException:
            self.release()
            raise

    def _cached(self) -> R | None:
        # Under the lock (where this run holds one): no other run commits before this one's work is done. The
        # commit compares the record with this identity either way.
        self.found = _record_identity(self.folder)
        if self.force:
            return None
        if done := completed_record(self.folder, self.record_type, self._require_fingerprint()):
            if (problem := self._unsigned()) is not None:  # never reused, and never signed after the fact
                self.log.info(f"{self.folder / RECORD_FILE} {problem}; recomputing it")
                return None
            self.log.info(f"up to date ({self.folder}); --force reruns")
            self.release()
            return done
        held = (self.folder / RECORD_FILE).exists() or self._stamped_elsewhere()
        if held and self.on_change == "refuse":
            raise InputError(f"{self.folder} holds {self.refusal or 'output made from other inputs or config'}; "
                             "pass --force to replace it, or choose another name or --run")
        if held:
            self.log.info(f"inputs or config changed since {self.folder} was made; recomputing")
        return None

    def _unsigned(self) -> str | None:
        """With a signing key: why the folder's record is not one this key signed (unsigned, another key's, or
        edited since), else None. A stage holding the key rebuilds such a record rather than report it."""
        if self.signing_key is None:
            return None
        data = read_bytes(self.folder / RECORD_FILE, "record")
        return signature_problem(data, self.folder, self.signing_key, required=True)

    def release(self) -> None:
        """End this run's hold on the folder's lock (a commit, a cache hit and a refusal do; a run that stops
        otherwise releases it when its :func:`stage_entry` call ends, else when it is garbage-collected)."""
        _StageLock.release(self.lock_path, self._token)

    def _stamped_elsewhere(self) -> bool:
        stamp = self.folder / "_work" / "fingerprint.txt"
        return stamp.exists() and stamp.read_text().strip() != self.fingerprint

    def discard(self) -> None:
        """Delete the folder before work done in place (``train --force``): the record this run found there is
        gone by its own hand, so its commit is not taken for another process's write. The lock, beside the
        folder, stays held for the work."""
        shutil.rmtree(self.folder)
        self.found = None

    def stamp_work(self) -> Path:
        """``<folder>/_work/`` for a stage that works in place (training checkpoints), stamped with the
        fingerprint so another config never resumes from it."""
        work = self.folder / "_work"
        work.mkdir(parents=True, exist_ok=True)
        (work / "fingerprint.txt").write_text(self._require_fingerprint())
        return work

    @property
    def progress(self) -> WorkProgress:
        work = self.store.stage_dir(self.stage, "_work")
        return WorkProgress(work / f"{self.name}-{self._require_fingerprint()[:16]}")

    def _require_fingerprint(self) -> str:
        if self.fingerprint is None:
            raise RuntimeError(f"{self.stage}/{self.name}: call cached() before the work starts")
        return self.fingerprint

    # --- commit --------------------------------------------------------------------------------------------

    def header(self, **extra: Any) -> dict[str, Any]:
        """The common record fields: id, run, inputs, config and fingerprint (``extra`` adds to the config)."""
        fingerprint = self._require_fingerprint()
        kind = self.record_type.model_fields["kind"].default
        return {"record_id": new_record_id(kind), "run_id": self.store.run_id, "inputs": list(self.inputs),
                "config": {**(self.config or {}), **extra}, "fingerprint": fingerprint}

    def _check_inputs_unchanged(self) -> None:
        """Before the record is written: no input file was written to, replaced or removed since it was hashed.
        Some inputs are read by path after they were hashed, by a library that takes only a path (model
        weights, detoxify's checkpoint, a user's lm-eval task files); one edited in between would make a
        record whose inputs name bytes the work never read. Each file's :func:`file_identity` is compared,
        which catches a file changed and then put back; each file opened by :meth:`file` or :meth:`tree` is
        also hashed again, in case a file system keeps no true ctime."""
        for path, identity in self.identities.items():
            if not path.is_file():
                raise self._changed(path, "removed", "nothing was written; rerun when it is back")
            if file_identity(path) != identity:
                raise self._changed(path, "changed", "it was written to or replaced, even if its bytes are back; "
                                    "nothing was written; rerun when it no longer changes")
        for path, digest in self.hashed.items():
            if sha256_file(path) != digest:
                raise self._changed(path, "changed", "nothing was written; rerun when it no longer changes")

    @contextlib.contextmanager
    def _committing(self) -> Iterator[None]:
        """Held while a commit writes, under the folder's lock (held since :meth:`cached`; taken now by a run
        that did not hold it: ``hold_lock=False``, a helper rank, a run whose lock a later one took over), and
        released after, whatever happens. Refused when the folder's record changed since :meth:`cached`
        looked, in case a writer went around the lock: this run would silently replace an output that writer
        reported, or report an output that is not the folder's."""
        try:
            self._check_inputs_unchanged()
            if not _StageLock.owns(self.lock_path, self._token):
                _StageLock.take(self.lock_path, self._token, self.folder)
            if self.fingerprint is not None and _record_identity(self.folder) != self.found:
                raise InputError(f"{self.folder}: another process wrote this {self.stage} while this run worked "
                                 f"(its record.json changed since this run checked it); nothing was written: "
                                 f"rerun to reuse or redo what is there")
            yield
        finally:
            self.release()

    def commit(self, record: R, files: dict[str, Iterable[dict[str, Any]] | str | bytes | Callable[[Path], None]]
               | None = None) -> R:
        """Write ``files`` (JSON Lines rows, text, bytes, or a function that fills a path) and the record,
        last, into the stage folder in one rename; drop the resume state. The record's ``outputs`` pins every
        file written (:func:`harness.core.store.read_output` reads them back checked)."""
        with self._committing():
            return self._commit(record, files)

    def _commit(self, record: R, files: dict[str, Any] | None) -> R:
        # Under the folder's lock no live process writes its temp or renamed-aside folders: any there were left
        # by a killed commit.
        for leftover in remove_leftovers(self.folder):
            self.log.info(f"deleted {leftover.name}, left beside {self.folder.name} by a commit that was stopped")
        with atomic_dir(self.folder) as tmp:
            for relative, content in (files or {}).items():
                target = tmp / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                if callable(content):
                    content(target)
                elif isinstance(content, bytes):
                    target.write_bytes(content)
                elif isinstance(content, str):
                    target.write_text(content, encoding="utf-8")
                else:
                    with open(target, "w", encoding="utf-8") as handle:
                        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in content)
            record.outputs = {path.relative_to(tmp).as_posix(): sha256_file(path)
                              for path in sorted(tmp.rglob("*")) if path.is_file()}
            data = (record.model_dump_json(indent=2) + "\n").encode("utf-8")
            (tmp / RECORD_FILE).write_bytes(data)
            if self.signing_key is not None:  # in the temp folder: published with the record, by the same rename
                (tmp / SIGNATURE_FILE).write_text(signature_text(data, self.signing_key), encoding="utf-8")
        if self.fingerprint is not None:
            self.progress.clear()
        return record

    def commit_in_place(self, record: R, files: dict[str, Iterable[dict[str, Any]] | str] | None = None) -> R:
        """Like :meth:`commit`, for a folder that holds more than this record: each file is replaced
        atomically and the record is written last, while everything else in the folder stays (only ``files``
        are pinned in ``outputs``). The signature is written around the record (:meth:`_write_record_in_place`)."""
        with self._committing():
            return self._commit_in_place(record, files)

    def _commit_in_place(self, record: R, files: dict[str, Iterable[dict[str, Any]] | str] | None) -> R:
        for relative, content in (files or {}).items():
            if isinstance(content, str):
                atomic_write_text(self.folder / relative, content)
            else:
                atomic_write_jsonl(self.folder / relative, content)
            record.outputs[relative] = sha256_file(self.folder / relative)
        self._write_record_in_place((record.model_dump_json(indent=2) + "\n").encode("utf-8"))
        if self.fingerprint is not None:
            self.progress.clear()
        return record

    def _write_record_in_place(self, data: bytes) -> None:
        """Replace the folder's record with ``data`` and its signature with one of ``data``, two files that no
        rename replaces together: a process killed between them must leave a record its signature vouches for.
        So the signature first vouches for the new record and for the one there now, if it vouched for that one
        already (a record edited or unsigned since gains nothing: a kill then leaves it refused as not matching),
        then the record is replaced, then the signature vouches for the new one only. Without a key
        the old signature goes first: a stale one would read as an edit, a missing one as an unsigned record,
        which is what this run writes."""
        record, signature = self.folder / RECORD_FILE, self.folder / SIGNATURE_FILE
        key = self.signing_key
        if key is None:
            signature.unlink(missing_ok=True)
            atomic_write_bytes(record, data)
            return
        old = valid_digest(read_bytes(record, "record"), self.folder, key) if record.is_file() else None
        atomic_write_text(signature, signature_text(data, key, also=old))
        atomic_write_bytes(record, data)
        if old is not None:
            atomic_write_text(signature, signature_text(data, key))
