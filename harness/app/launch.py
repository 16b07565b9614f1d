"""`nift-gate launch`: a stage on several processes through accelerate's launcher, with nift-gate's exit status.

``accelerate launch`` ends with its own status 1 whenever a rank fails, whatever the rank exited with, so a CI
job cannot tell bad input (2) or a failed teacher (3) from a crash. This runs the same launcher in-process
(``accelerate.commands.launch``) and, when a rank fails, exits with the status of the rank that failed first (the
root cause; the launcher then stops the others), or 128 + N for a rank killed by signal N, as a shell reports it.
Everything that can be checked here is checked before any process starts: a bad input found on the ranks is
reported once per rank, among the launcher's own lines.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml

from harness.core.config import load_yaml, yaml_error_line
from harness.core.errors import ConfigError
from harness.core.store import read_utf8

#: The commands that shard their work over the launched ranks; every other command runs on one process.
LAUNCHABLE = {("train",): "train", ("data", "build"): "data build", ("bench",): "bench"}

#: The largest TCP port; 0 asks accelerate to pick a free one (its launcher says so when a port is taken).
MAX_PORT = 65535


def launchable(command: list[str]) -> tuple[str, ...]:
    """The launchable command ``command`` starts with, or a config error naming the ones there are."""
    for words in LAUNCHABLE:
        if tuple(command[: len(words)]) == words:
            return words
    raise ConfigError(f"launch: {' '.join(command[:2]) or 'no command'!r} does not run on several processes; "
                      f"give one of: {', '.join(LAUNCHABLE.values())}")


def check_command(command: list[str], parser: argparse.ArgumentParser) -> None:
    """What ``nift-gate <command>`` refuses before its stage starts, refused before any process starts (on the
    ranks each would print it, among the launcher's lines): its usage (``parser``: the CLI's), its config and
    --set, and for train the checkpoints it selects (none configured, an unknown --name)."""
    from harness.app.config import load_pipeline_config

    words = launchable(command)
    stage = parser.parse_args(command)
    config = load_pipeline_config(stage.config, stage.assignments, {"run": stage.run})
    if words == ("train",):
        from harness.train.train import select_checkpoints

        select_checkpoints(config.train, stage.name)


def read_accelerate_config(path: Path) -> Any:
    """The accelerate config at ``path`` as accelerate's launcher reads it (JSON for a ``.json`` file, else YAML);
    what accelerate fails on with a traceback (not a mapping, not UTF-8 or YAML, an unknown key or value) is a
    config error naming the file."""
    from accelerate.commands.config.config_args import load_config_from_file

    text = read_utf8(path, "config file for accelerate (see configs/accelerate/)", ConfigError)
    is_json = str(path).endswith(".json")  # the test accelerate's loader makes
    try:
        settings = json.loads(text) if is_json else load_yaml(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_error_line(exc, path, text)) from None
    if not isinstance(settings, dict):
        raise ConfigError(f"{path}: expected a mapping of accelerate settings (distributed_type, num_processes, "
                          f"...), got {'nothing' if settings is None else type(settings).__name__}; see "
                          "configs/accelerate/")
    try:
        return load_config_from_file(str(path))
    except (ValueError, TypeError) as exc:  # an unknown key, a distributed_type accelerate does not know
        raise ConfigError(f"{path}: {' '.join(str(exc).split())}") from None


def _whole_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def launch_settings(config: Any, path: Path, num_processes: int | None,
                    main_process_port: int | None) -> tuple[int, int | None]:
    """The number of processes and the rendezvous port (None: accelerate's 29500) the launch uses: the flag's,
    else ``config``'s (read from ``path``); a count under 1, or a port outside 1..65535 other than 0 (a free one,
    which only one machine can pick), is a config error naming the flag or the file's field."""
    if num_processes is None:
        num_processes = getattr(config, "num_processes", None)
        if num_processes in (None, -1):  # -1: accelerate's "given on the command line"
            raise ConfigError(f"{path}: num_processes is not set (or is -1); set it there or give --num-processes")
        where = f"{path}: num_processes"
    else:
        where = "--num-processes"
    if not _whole_number(num_processes) or num_processes < 1:
        raise ConfigError(f"{where} {num_processes!r}: give a whole number of processes, 1 or more")
    if main_process_port is None:
        main_process_port = getattr(config, "main_process_port", None)
        where = f"{path}: main_process_port"
    else:
        where = "--main-process-port"
    if main_process_port is not None and not (_whole_number(main_process_port)
                                              and 0 <= main_process_port <= MAX_PORT):
        raise ConfigError(f"{where} {main_process_port!r}: give a port from 1 to {MAX_PORT}, or 0 for a free one")
    machines = getattr(config, "num_machines", 1)
    if main_process_port == 0 and _whole_number(machines) and machines > 1:
        # each machine's launcher would pick its own free port, and the ranks would never meet
        raise ConfigError(f"{where} 0 picks a free port on one machine only; {path} has num_machines {machines}: "
                          "give the port")
    return num_processes, main_process_port


def exit_status(exitcode: int) -> int:
    """A rank's status as a shell would report it: its exit code, or 128 + N when signal N killed it."""
    return 128 - exitcode if exitcode < 0 else exitcode


def launch(accelerate_config: Path, command: list[str], num_processes: int | None = None,
           main_process_port: int | None = None) -> int:
    """Run ``nift-gate <command>`` on the processes ``accelerate_config`` describes; the first failed rank's
    status, else 0. The accelerate config and the flags are checked before any process starts (the command's
    own usage and config are checked by the CLI before it calls this)."""
    from accelerate.commands.launch import launch_command, launch_command_parser
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    config = read_accelerate_config(accelerate_config)
    num_processes, main_process_port = launch_settings(config, accelerate_config, num_processes,
                                                       main_process_port)
    argv = ["--config_file", str(accelerate_config), "--num_processes", str(num_processes),
            *(["--main_process_port", str(main_process_port)] if main_process_port is not None else []),
            "-m", "harness.app.cli", *command]
    try:
        launch_command(launch_command_parser().parse_args(argv))
    except ChildFailedError as exc:
        _, failure = exc.get_first_failure()
        return exit_status(failure.exitcode) or 1
    return 0
