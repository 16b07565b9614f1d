"""`nift-gate launch`: a stage on several processes through accelerate's launcher, with nift-gate's exit status.

``accelerate launch`` ends with its own status 1 whenever a rank fails, whatever the rank exited with, so a CI
job cannot tell bad input (2) or a failed teacher (3) from a crash. This runs the same launcher in-process
(``accelerate.commands.launch``) and, when a rank fails, exits with the status of the rank that failed first (the
root cause; the launcher then stops the others), or 128 + N for a rank killed by signal N, as a shell reports it.
"""

from __future__ import annotations

from pathlib import Path

from harness.core.errors import ConfigError

#: The commands that shard their work over the launched ranks; every other command runs on one process.
LAUNCHABLE = {("train",): "train", ("data", "build"): "data build", ("bench",): "bench"}


def launchable(command: list[str]) -> tuple[str, ...]:
    """The launchable command ``command`` starts with, or a config error naming the ones there are."""
    for words in LAUNCHABLE:
        if tuple(command[: len(words)]) == words:
            return words
    raise ConfigError(f"launch: {' '.join(command[:2]) or 'no command'!r} does not run on several processes; "
                      f"give one of: {', '.join(LAUNCHABLE.values())}")


def exit_status(exitcode: int) -> int:
    """A rank's status as a shell would report it: its exit code, or 128 + N when signal N killed it."""
    return 128 - exitcode if exitcode < 0 else exitcode


def launch(accelerate_config: Path, command: list[str], num_processes: int | None = None,
           main_process_port: int | None = None) -> int:
    """Run ``nift-gate <command>`` on the processes ``accelerate_config`` describes; the first failed rank's
    status, else 0."""
    from accelerate.commands.launch import launch_command, launch_command_parser
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    launchable(command)
    if not accelerate_config.is_file():
        raise ConfigError(f"{accelerate_config}: no such accelerate config (see configs/accelerate/)")
    argv = ["--config_file", str(accelerate_config),
            *(["--num_processes", str(num_processes)] if num_processes else []),
            *(["--main_process_port", str(main_process_port)] if main_process_port else []),
            "-m", "harness.app.cli", *command]
    try:
        launch_command(launch_command_parser().parse_args(argv))
    except ChildFailedError as exc:
        _, failure = exc.get_first_failure()
        return exit_status(failure.exitcode) or 1
    return 0
