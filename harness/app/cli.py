"""`nift-gate`: the command line. Thin by design: parse, build the config, call the stage."""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib.util
import os
import signal
import sys
import tempfile
from enum import IntEnum
from pathlib import Path

from harness.core.errors import ConfigError, InputError, NiftError
from harness.core.log import configure as configure_logging
from harness.core.text import one_line

DESCRIPTION = """\
nift-gate: build NIFT data, train candidates, and gate their release.

Stages (each writes versioned records under <home>/<run>/<stage>/):
  data build    corpus -> filtered, cut documents -> teacher continuations -> NIFT pairs + data card
  train         NIFT candidates and SFT baselines with TRL (LoRA by default) -> checkpoints + model cards
  bench         candidate and baselines through lm-eval, paired statistics, optional pairwise judge
  audit         toxicity (k sampled continuations per prompt, detoxify or a labelled fallback) and
                hallucination (closed book, HaluEval QA + discrimination, SelfCheckGPT, TruthfulQA)
  review        human review queue: enqueue outputs, Streamlit app (serve), summary record, label export
  gate          policy rules over the stored records -> PROMOTE / REJECT / PENDING_REVIEW, logged in the registry
  override      a release manager's PROMOTE or REJECT with a mandatory reason (the decision stays)
  registry      verify the hash-chained decision log, or show it with the current aliases
  history       every decision and override across candidates: verdicts, gated metrics, aliases, who and when
  report        one self-contained HTML executive report and its Markdown twin (--pdf: and a PDF)
  launch        train, data build or bench on several processes (accelerate), keeping nift-gate's exit status

The runs home is --home, else $NIFT_HOME, else ./nift-runs. A stage whose inputs and config match a
finished record is skipped; --force redoes it.
"""


class VerdictExit(IntEnum):
    """Exit status of `gate` and `run` per verdict (the one place they are defined). Distinct from every other
    status the CLI exits with: 1 (an unexpected error: Python's status for an uncaught exception), 2 (bad input
    or config, a tampered registry: ``NiftError.exit_code``), 3 (the teacher failed: ``TeacherError``), 4 (the
    decision is logged but publishing it failed: ``PublicationError``), 130 (interrupted) and 141 (stdout was
    closed early, as by ``| head``: a command killed by SIGPIPE). A CI job fails on REJECT and can wait (not
    fail) on PENDING_REVIEW by its number."""

    PROMOTE = 0
    REJECT = 10
    PENDING_REVIEW = 11


EXIT_CODES_HELP = (
    f"Exit status: {VerdictExit.PROMOTE.value} PROMOTE, {VerdictExit.REJECT.value} REJECT, "
    f"{VerdictExit.PENDING_REVIEW.value} PENDING_REVIEW: the verdict that holds (a release manager's override of "
    f"this very decision replaces the gate's); 2 bad input or config, or a tampered registry (nothing decided, "
    f"unless the error says the decision is logged: then only writing --junit or the step summary failed); 3 the "
    f"teacher failed; 4 the decision is logged but publishing it (model card, MLflow) failed: rerun `nift-gate "
    f"gate` to publish it; 1 an unexpected error; 130 interrupted. --json prints the decision as JSON on stdout (and "
    f"nothing else there); --junit FILE writes one JUnit test case per rule outcome; where GITHUB_STEP_SUMMARY is "
    f"set, a Markdown summary is appended to that file.")


def _add_verdict_outputs(parser: argparse.ArgumentParser) -> None:
    """--json and --junit, for the commands that end in a verdict (gate, run)."""
    parser.add_argument("--json", action="store_true",
                        help="Print the decision as JSON on stdout (verdict, reason, rules with values and CIs, "
                             "record ids); everything else goes to stderr.")
    parser.add_argument("--junit", type=Path, metavar="FILE",
                        help="Write JUnit XML: one test case per rule outcome (per baseline), failures and skips "
                             "carrying the evidence.")


def _add_common(parser: argparse.ArgumentParser, force: bool = True) -> None:
    parser.add_argument("--config", type=Path, help="Pipeline YAML (a section per stage: README 'Config'). Default: "
                                                    "built-in defaults.")
    parser.add_argument("--run", help="Run folder name (overrides `run:` in the config).")
    parser.add_argument("--home", help="Runs home folder (default: $NIFT_HOME or ./nift-runs).")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                        help="Override any config field, e.g. --set data.cut.ratio=0.4 (repeatable).")
    if force:
        parser.add_argument("--force", action="store_true", help="Redo the stage even when a matching record "
                                                                 "exists.")


def _add_verbosity(parser: argparse.ArgumentParser, top: bool = False) -> None:
    """-q/-v work before or after the command (``nift-gate -q run ...`` or ``nift-gate run ... -q``)."""
    default = 0 if top else argparse.SUPPRESS
    parser.add_argument("-q", "--quiet", dest="quiet", action="store_true", default=False if top else argparse.SUPPRESS,
                        help="Only warnings and errors (progress bars stay; hide them with TQDM_DISABLE=1).")
    parser.add_argument("-v", "--verbose", dest="verbose", action="count", default=default,
                        help="More detail (debug messages).")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nift-gate", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_verbosity(parser, top=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_data_parser, _add_train_parser, _add_bench_parser, _add_audit_parser, _add_review_parsers,
                _add_gate_parsers, _add_run_parser, _add_config_parser, _add_launch_parser):
        add(commands)
    for leaf in _leaf_parsers(parser):
        _add_verbosity(leaf)
    return parser


def _leaf_parsers(parser: argparse.ArgumentParser):
    """Every parser that takes a command's own options (the ones with no further sub-commands)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield parser
        return
    for sub in subs:
        for child in dict.fromkeys(sub.choices.values()):
            yield from _leaf_parsers(child)


def _add_data_parser(commands) -> None:
    data = commands.add_parser("data", help="Build NIFT pairs from a corpus.")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    build = data_commands.add_parser(
        "build", help="Cut documents, have the teacher continue them, filter, write pairs and a data card.",
        description="Build NIFT pairs (Xie, Syu, Lee 2024): the first part of each document becomes the user "
                    "turn and the teacher's continuation the assistant turn. Writes <home>/<run>/data/<variant>/ "
                    "with pairs.jsonl, a datasets folder, card.md and record.json. Resumable: rerun after a "
                    "crash and finished teacher shards are reused. Exit status: 0 when every variant has pairs; 2 "
                    "on bad input or when a variant ends with 0 pairs (every document filtered out); 3 when the "
                    "teacher fails (teacher.on_failure=stop, or every row failed, e.g. an unreachable endpoint). A "
                    "variant that fails writes nothing. All fields: see README 'Config'.")
    _add_common(build)
    build.add_argument("--corpus", help="Local corpus file or folder (.jsonl/.json/.parquet/.txt). "
                                        "Default: the embedded corpus.")
    build.add_argument("--hub-dataset", help="Hugging Face dataset id to stream instead (needs network).")
    build.add_argument("--text-field", help="Field holding the text, dotted if nested: meta.body (default: text).")
    build.add_argument("--teacher", help="Teacher model: embedded name, folder, .gguf, hub id or served name.")
    build.add_argument("--teacher-backend", choices=["transformers", "openai", "vllm"], help="Teacher backend.")
    build.add_argument("--base-url", help="OpenAI-compatible endpoint for --teacher-backend openai.")
    build.add_argument("--variant", action="append", help="Build only this variant (repeatable).")
    build.add_argument("--limit", type=int, help="Use only the first N documents that pass the filters.")
    build.add_argument("--seed", type=int, help="Seed for cuts and sampling (default 0).")
    build.add_argument("--threads", type=int, help="CPU threads for a local teacher (default: measured).")
    build.add_argument("--show-card", action="store_true", help="Print each variant's data card when done.")


def _add_train_parser(commands) -> None:
    train = commands.add_parser(
        "train", help="Train the checkpoints listed under `train:` in the config (NIFT, SFT, hybrid).",
        description="Fine-tune with TRL's SFTTrainer, loss on the assistant turn only, LoRA by default. Writes "
                    "<home>/<run>/train/<name>/ with model/ (adapter or weights + model card), merged/, log.jsonl "
                    "and record.json. A killed run resumes from its last checkpoint (save_steps). Under several "
                    "GPUs: accelerate launch --config_file configs/accelerate/ddp.yaml -m harness.app.cli train ...")
    _add_common(train)
    train.add_argument("--name", action="append", help="Train only this checkpoint (repeatable).")
    train.add_argument("--threads", type=int, help="CPU threads (default: measured).")


def _add_bench_parser(commands) -> None:
    bench = commands.add_parser(
        "bench", help="Benchmark the candidate against its baselines with lm-eval and paired statistics.",
        description="Runs lm-eval (simple_evaluate with HFLM) on the candidate and each baseline, keeps every "
                    "per-item row, and compares candidate vs baseline item by item: paired bootstrap CI of the mean "
                    "difference, exact McNemar (binary metrics) or sign test p-value. Baseline results are cached by "
                    "(model hash, fingerprint) and reused. Writes <home>/<run>/bench/<candidate>/.")
    _add_common(bench)
    bench.add_argument("--task", action="append", help="Run these lm-eval tasks instead of bench.tasks (repeatable).")
    bench.add_argument("--limit", type=int, help="Items per task (quick runs).")
    bench.add_argument("--threads", type=int, help="CPU threads (default: measured).")


def _add_audit_parser(commands) -> None:
    audit = commands.add_parser(
        "audit", help="Audit the candidate and its baselines: toxicity, hallucination, bias, memorization.",
        description="Toxicity: the RealToxicityPrompts protocol as HELM runs it: k sampled continuations per prompt "
                    "(default 25, temperature 1, 20 new tokens), each scored by detoxify (a local checkpoint offline) "
                    "or, where detoxify cannot be loaded, by the alt-profanity-check fallback, named as such in every "
                    "record; expected maximum toxicity and toxicity probability with bootstrap CIs, per attribute "
                    "and prompt group. Hallucination: the closed-book set (hallucination and appropriate-abstention "
                    "rates), HaluEval QA answer matching and discrimination (audit.hallucination.halueval.path), "
                    "SelfCheckGPT n-gram consistency over sampled answers, TruthfulQA MC1/MC2 through lm-eval "
                    "(audit.hallucination.truthfulqa.path or bench.truthfulqa_path). Every metric has n, a CI and a "
                    "paired delta against each baseline. Models default to bench.candidate and bench.baselines. "
                    "Bias (BBQ) and memorization (off by default), and any audit a plugin registers, run too when "
                    "enabled. Each audit writes <home>/<run>/audit/<name>/ with record.json and samples.jsonl (flags "
                    "for the review queue).")
    _add_common(audit)
    audit.add_argument("--only", metavar="AUDIT", help="Run one registered audit only (toxicity, hallucination, bias, "
                       "memorization or one a plugin registers), if it is enabled.")
    audit.add_argument("--limit-per-group", type=int, help="Toxicity prompts per group (quick runs).")
    audit.add_argument("--samples", type=int, help="Toxicity continuations per prompt (default 25).")
    audit.add_argument("--halueval", help="HaluEval QA JSON Lines file (e.g. qa_data.json).")
    audit.add_argument("--truthfulqa", help="TruthfulQA mc_task.json.")
    audit.add_argument("--threads", type=int, help="CPU threads (default: measured).")


def _add_review_parsers(commands) -> None:
    review = commands.add_parser("review", help="Human review: fill the queue, serve the app, summarise, export.")
    review_commands = review.add_subparsers(dest="review_command", required=True, metavar="ACTION")
    enqueue = review_commands.add_parser(
        "enqueue", help="Queue bench and audit outputs for human review and assign reviewers.",
        description="Stratified: every flagged audit sample, the k worst items per metric, a random sample per "
                    "task, and blind A/B pairs per baseline. Duplicates (same model, prompt and output) are "
                    "skipped; each item needs review.required_reviewers reviewers. The store is review.database, "
                    "else SQLite at <home>/<run>/review/review.db.")
    _add_common(enqueue, force=False)
    serve = review_commands.add_parser(
        "serve", help="Run the Streamlit review app (streamlit run dashboard/app.py).",
        description="Reviewers sign in with their name and token (or OIDC when review.oidc), label their queue, "
                    "judge blind A/B pairs; release managers also see progress, agreement and the export. "
                    "It listens on 127.0.0.1 only unless --host (or --server.address after --) says otherwise, "
                    "and shows visitors no error details (client.showErrorDetails none; the server log has them), "
                    "no developer toolbar (client.toolbarMode viewer) and sends no usage statistics. The command "
                    "becomes the Streamlit server (exec): SIGTERM or Ctrl-C stop it. Health check: GET "
                    "/_stcore/health answers 'ok'. Arguments after -- go to `streamlit run` "
                    "(e.g. -- --server.port 8600).")
    _add_common(serve, force=False)
    serve.add_argument("--host", help="Address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 for "
                                      "every interface, behind TLS).")
    serve.add_argument("streamlit_args", nargs=argparse.REMAINDER, help="Passed to streamlit run (after --).")
    summary = review_commands.add_parser(
        "summary", help="Summarise the labels as the review record the gate reads (<run>/review/record.json).")
    _add_common(summary, force=False)
    summary.add_argument("--candidate", help="Candidate to summarise (default: the run's candidate).")
    export = review_commands.add_parser(
        "export", help="Export every label and judgment to CSV or Parquet.",
        description="Every label and judgment ever given, superseded ones flagged, blind pairs de-blinded. Never "
                    "overwrites the label store; overwrites an existing file inside the run folder only with "
                    "--force. CSV cells that start like a spreadsheet formula (= + - @, tab, CR) get a leading '.")
    _add_common(export, force=False)
    export.add_argument("--out", type=Path, required=True, help="Output file (.csv or .parquet).")
    export.add_argument("--force", action="store_true", help="Overwrite an existing --out file inside the run "
                                                             "folder.")
    export.add_argument("--format", choices=["csv", "parquet"], help="Default: from the --out suffix.")


def _add_run_parser(commands) -> None:
    run = commands.add_parser(
        "run", help="Run the whole gate: data, train, bench, audit, review, gate, report.",
        description="Runs every stage of CONFIG in order: data build -> train (NIFT candidate and SFT baselines) -> "
                    "bench -> audit (every enabled audit) -> review enqueue + summary -> gate -> report. Each "
                    "stage is cached by its fingerprint and resumes after a crash, so rerunning redoes only what "
                    "changed. The policy, --junit and GITHUB_STEP_SUMMARY are checked before the first stage. "
                    "Ends with the report path, the history of decisions across candidates and, while review is "
                    "pending, the commands that open the review app and then re-decide.",
        epilog=EXIT_CODES_HELP)
    run.add_argument("config_file", type=Path, metavar="CONFIG", help="Pipeline YAML, e.g. configs/demo.yaml.")
    run.add_argument("--run", help="Run folder name (overrides `run:` in the config).")
    run.add_argument("--home", help="Runs home folder (default: $NIFT_HOME or ./nift-runs).")
    run.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                     help="Override any config field (repeatable).")
    run.add_argument("--force", action="store_true", help="Redo every stage even when a matching record exists.")
    _add_verdict_outputs(run)


def _add_launch_parser(commands) -> None:
    launch = commands.add_parser(
        "launch", help="Run train, data build or bench on several processes, with nift-gate's exit status.",
        description="The same as `accelerate launch --config_file ACCELERATE_CONFIG -m harness.app.cli COMMAND "
                    "...`, except the status: accelerate's launcher exits 1 whenever a rank fails; this exits with "
                    "the status of the rank that failed first (2 bad input or config, 3 the teacher failed, 1 an "
                    "unexpected error, 128+N killed by signal N). The command's config is read first, so a bad "
                    "config or --set stops here, before any process starts. launch's own options come before "
                    "ACCELERATE_CONFIG; everything after COMMAND is the command's. Example: nift-gate launch "
                    "configs/accelerate/cpu-ddp.yaml train --config configs/demo.yaml")
    launch.add_argument("accelerate_config", type=Path, metavar="ACCELERATE_CONFIG",
                        help="An accelerate config file, e.g. configs/accelerate/cpu-ddp.yaml (2 CPU processes).")
    launch.add_argument("--num-processes", type=int, help="Override the config's num_processes.")
    launch.add_argument("--main-process-port", type=int,
                        help="Port of the ranks' rendezvous (default: the config's, else 29500).")
    launch.add_argument("stage_args", nargs=argparse.REMAINDER, metavar="COMMAND ...",
                        help="train ..., data build ... or bench ..., with their own options.")


def _launch(args: argparse.Namespace) -> int:
    from harness.app.launch import check_command, launch

    check_command(args.stage_args, build_parser())
    return launch(args.accelerate_config, args.stage_args, args.num_processes, args.main_process_port)


def _add_config_parser(commands) -> None:
    config = commands.add_parser("config", help="Show the resolved config, or the reference of every field.")
    config_commands = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    show = config_commands.add_parser("show", help="Print the resolved config as YAML (defaults < file < --set).")
    show.add_argument("--config", type=Path, help="Pipeline YAML.")
    show.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE")
    config_commands.add_parser("reference", help="Print every config field with its default and meaning (Markdown).")


def _add_gate_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="Pipeline YAML (its gate:, bench: and report: sections).")
    parser.add_argument("--run", help="Run folder name (overrides `run:` in the config).")
    parser.add_argument("--home", help="Runs home folder (default: $NIFT_HOME or ./nift-runs).")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                        help="Override any config field, e.g. --set gate.baselines=[sft-baseline] (repeatable).")


def _add_gate_parsers(commands) -> None:
    gate = commands.add_parser(
        "gate", help="Judge the candidate against the release policy: PROMOTE, REJECT or PENDING_REVIEW.",
        description="Reads the run's stored records (bench, every audit's, review) and judges "
                    "every rule of the policy YAML: thresholds, ceilings and floors, non-inferiority against each "
                    "baseline on the paired CI (the lower bound of candidate - baseline, oriented by the metric's "
                    "registered direction, must be above -margin), review quorum, approval rate and agreement. A "
                    "failed block rule rejects; a block rule waiting for reviews makes it PENDING_REVIEW. Writes "
                    "<home>/<run>/gate/<candidate>/record.json (same inputs, same bytes), appends it to the registry "
                    "log once, and on PROMOTE moves gate.promote_aliases, writes the model card's model-index and "
                    "exports to MLflow when gate.mlflow.tracking_uri is set. Policy format: README 'Gate, registry "
                    "and report'.",
        epilog=EXIT_CODES_HELP)
    _add_gate_common(gate)
    gate.add_argument("--policy", type=Path, help="Policy YAML (overrides gate.policy).")
    gate.add_argument("--candidate", help="Candidate name (default: gate.candidate, else bench.candidate's name).")
    _add_verdict_outputs(gate)

    override = commands.add_parser(
        # no abbreviations: `--token SECRET` must be refused, not taken for --token-env
        "override", allow_abbrev=False,
        help="Record a release manager's PROMOTE or REJECT of the decision --decision-id names, with a reason.",
        description="Writes an override record beside the gate's decision (which is never changed) and appends it "
                    "to the registry log. --decision-id names the decision overridden, as `nift-gate gate` printed "
                    "it (`decision <id> -> ...`; also in `nift-gate registry show`): it must still be the "
                    "candidate's latest decision, else nothing is logged (exit 2), so an override never lands on a "
                    "decision logged after the one the release manager read. "
                    "PROMOTE moves --alias (default gate.promote_aliases) to the candidate and "
                    "updates its model card; REJECT takes the candidate's aliases away (or only those named). "
                    "--by and a non-empty --reason are required, and --by must be a reviewer with role "
                    "release_manager in the review config, authenticated by their review-app token, read from the "
                    "environment variable NIFT_TOKEN (or the one --token-env names), never from the command line.")
    _add_gate_common(override)
    override.add_argument("--decision", required=True, choices=["PROMOTE", "REJECT"], help="The decision that holds.")
    override.add_argument("--decision-id", required=True, metavar="ID",
                          help="The id of the gate decision overridden (gate_decision-...), as `nift-gate gate` "
                               "printed it; refused unless it is the candidate's latest decision.")
    override.add_argument("--by", required=True, help="The release manager's name (review.reviewers, role "
                                                       "release_manager).")
    override.add_argument("--token-env", default="NIFT_TOKEN", metavar="NAME",
                          help="Environment variable holding the release manager's review-app token "
                               "(default NIFT_TOKEN).")
    override.add_argument("--reason", required=True, help="Why the gate's verdict is overridden (mandatory).")
    override.add_argument("--alias", action="append", help="Alias to move, e.g. production (repeatable).")
    override.add_argument("--candidate", help="Candidate name (default: gate.candidate, else bench.candidate's name).")

    registry = commands.add_parser("registry", help="Verify or show the hash-chained decision log.")
    registry_commands = registry.add_subparsers(dest="registry_command", required=True, metavar="ACTION")
    verify = registry_commands.add_parser(
        "verify", help="Check every entry's hash and the chain; name the first edited, deleted or moved entry.",
        description="Exit status 0 when the log verifies, 2 (with the file and line named) when an entry was "
                    "edited, deleted, reordered or appended without updating head.json, or when a decision or "
                    "override file under this runs home differs from the hash its entry logged. --expect-head "
                    "checks the log against a head hash kept elsewhere (a commit, a ticket).")
    show = registry_commands.add_parser("show", help="Print the log's entries and the aliases they imply.")
    for sub in (verify, show):
        _add_gate_common(sub)
        sub.add_argument("--registry", help="Registry folder (default: gate.registry or <home>/registry).")
    verify.add_argument("--expect-head", metavar="HASH", help="A head hash printed by an earlier verify and kept "
                                                              "elsewhere: the log must still hold that entry.")

    history = commands.add_parser(
        "history", help="List every decision and override across candidates, with gated metrics and aliases.",
        description="Reads the registry log (verified, under its lock) and, for each entry, the decision file it "
                    "logged (only while that file still holds the logged bytes): verdict, run and candidate, the "
                    "candidate's value of each gated metric, aliases moved, when, and by whom (the gate or the "
                    "release manager), then which model holds each alias (staging, production). Runs outside this "
                    "runs home show no metrics. Exit status 0, or 2 when the log does not verify.")
    _add_gate_common(history)
    history.add_argument("--registry", help="Registry folder (default: gate.registry or <home>/registry).")
    history.add_argument("--json", action="store_true", help="Print the entries and aliases as JSON.")

    report = commands.add_parser(
        "report", help="Write the executive report: one self-contained HTML file and a Markdown twin.",
        description="Reads only stored records (data, train, bench, audits, review, gate decision and overrides) "
                    "and writes <home>/<run>/report/report.html (charts inline, no network needed to open it) and "
                    "report.md. The first line is the verdict and why. Run `nift-gate gate` first.")
    _add_gate_common(report)
    report.add_argument("--candidate", help="Candidate name (default: gate.candidate, else bench.candidate's name).")
    report.add_argument("--out", type=Path, help="Folder for report.html and report.md (default: <run>/report).")
    report.add_argument("--pdf", action="store_true", help="Also print the HTML report to report.pdf beside it "
                                                           "(headless Chromium).")


def _gate_config(args: argparse.Namespace):
    from harness.app.config import load_pipeline_config
    from harness.core.store import RunStore

    config = load_pipeline_config(args.config, args.assignments, {
        "run": args.run, "gate.policy": str(p) if (p := getattr(args, "policy", None)) else None,
        "gate.candidate": getattr(args, "candidate", None),
        "gate.registry": getattr(args, "registry", None)})  # "" is refused by the config, not read as "."
    return config, RunStore(config.run, args.home)


@contextlib.contextmanager
def _human_output(args: argparse.Namespace):
    """With --json, stdout carries the JSON document alone: what would be printed (progress, logging, results,
    and what native code or a library writes to file descriptor 1) goes to stderr until the block ends."""
    if not getattr(args, "json", False):
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _verdict(args: argparse.Namespace, config, store, record):
    """The decision with the overrides logged against it, as the CI outputs show it."""
    from harness.app.stages import open_registry
    from harness.gate.ci import logged_verdict

    return logged_verdict(store, record, open_registry(config, store).folder,
                          {verdict.name: verdict.value for verdict in VerdictExit})


def _check_verdict_outputs(args: argparse.Namespace, config, store) -> None:
    """Refuse a --junit or $GITHUB_STEP_SUMMARY file that cannot be written before anything is decided. Probed by
    writing (a temporary file in the folder, and opening the file to append), since root's permission checks
    (``os.access``) pass a read-only mount. A file in the runs home or the registry is refused too: a report written
    over ``registry/log.jsonl`` or a bench record would destroy the evidence the verdict rests on; so is an input of
    the gate outside the home (a label store elsewhere, the policy, the config, the tokens file). A link is
    followed (the JUnit file is written where it points); a device or pipe is no file to replace."""
    from harness.app.stages import open_registry
    from harness.core.assets import EMBEDDED_PREFIX
    from harness.review.export import sqlite_files

    guarded = [store.home.resolve(), open_registry(config, store).folder.resolve()]
    # the gate's inputs outside the runs home: the label store (a database elsewhere), the policy, the config
    inputs = {Path(p).resolve(): what for what, p in (
        ("the config", getattr(args, "config", None) or getattr(args, "config_file", None)),
        ("the policy", config.gate.policy), ("the tokens file", config.review.tokens_file),
        ("the guidelines", config.review.guidelines)) if p and not str(p).startswith(EMBEDDED_PREFIX)}
    inputs.update({file: "the label store" for file in sqlite_files(config.review.database or "")})
    for what, path in (("--junit", args.junit), ("GITHUB_STEP_SUMMARY", os.environ.get("GITHUB_STEP_SUMMARY"))):
        if not path:
            continue
        path = Path(path).absolute()
        target = path.resolve()
        if inside := next((folder for folder in guarded if target.is_relative_to(folder)), None):
            raise ConfigError(f"{what} {path}: inside {inside}, which holds the runs and decisions; writing it there "
                              f"could replace evidence: name a file elsewhere; nothing was decided")
        if target in inputs:
            raise ConfigError(f"{what} {path}: is {inputs[target]} of this gate; writing it there would replace it: "
                              f"name a file elsewhere; nothing was decided")
        try:
            if target.is_dir():
                raise IsADirectoryError(errno.EISDIR, "a folder, not a file")
            if what == "--junit" and target.exists() and not target.is_file():
                raise OSError(errno.EINVAL, "not a regular file (a device or pipe is not replaced)")
            tempfile.TemporaryFile(dir=next(p for p in target.parents if p.exists())).close()
            if target.exists():
                open(target, "a").close()
        except OSError as exc:
            raise ConfigError(f"{what} {path}: cannot be written ({exc.strerror}); nothing was decided") from None


def _verdict_outputs(args: argparse.Namespace, result) -> int:
    """--junit, $GITHUB_STEP_SUMMARY and --json for a verdict; the exit status it gives."""
    from harness.gate.ci import append_step_summary, write_junit

    try:
        if args.junit:
            print(f"junit -> {write_junit(args.junit, result)}", file=sys.stderr if args.json else sys.stdout)
        if summary := os.environ.get("GITHUB_STEP_SUMMARY"):
            append_step_summary(summary, result)
    except OSError as exc:
        raise InputError(f"{exc.filename}: cannot be written ({exc.strerror}); the decision "
                         f"{result.decision_record_id} ({result.verdict}) is logged: rerun to write the outputs "
                         f"(nothing is logged twice)") from None
    if args.json:
        print(result.model_dump_json(indent=2))
    return result.exit_code


def _gate(args: argparse.Namespace) -> int:
    from harness.app.stages import decide

    config, store = _gate_config(args)
    _check_verdict_outputs(args, config, store)
    with _human_output(args):
        record = decide(config, store)
        # one_line: rule details quote record fields (an attribute, a judge's name) whoever wrote the record chose
        print(one_line(record.reason))
        for o in record.outcomes:
            print(one_line(f"  [{o.status:7}] {o.severity:5} {o.rule}{f' vs {o.baseline}' if o.baseline else ''}: "
                           f"{o.detail}"))
        print(f"decision {record.record_id} -> {store.stage_dir('gate', record.candidate) / 'record.json'}")
        result = _verdict(args, config, store, record)
        _print_holding(result)
    return _verdict_outputs(args, result)


def _print_holding(result) -> None:
    for o in result.overrides:
        print(one_line(f"override {o.record_id}: {o.decision} by {o.release_manager}: {o.reason}"))
    print(f"verdict {result.verdict} (exit status {result.exit_code})")


def _override(args: argparse.Namespace) -> int:
    from harness.app.stages import override

    config, store = _gate_config(args)
    record = override(config, store, args.decision, args.by, args.reason, args.alias,
                      token=os.environ.get(args.token_env), decision_id=args.decision_id)
    moved = f"; aliases {', '.join(record.aliases)}" if record.aliases else ""
    print(f"override {record.record_id}: {record.original_decision} -> {record.decision} by {record.release_manager}"
          f"{moved}")
    return 0


def _registry_verify(args: argparse.Namespace) -> int:
    from harness.app.stages import open_registry, verify_registry

    config, store = _gate_config(args)
    check = verify_registry(config, store, args.expect_head)
    elsewhere = f" ({check.elsewhere} entries of runs not under {store.home})" if check.elsewhere else ""
    print(f"registry {open_registry(config, store).folder}: {check.entries} entries, chain and head verified; "
          f"{check.files} decision and override files match their entries{elsewhere}")
    if check.anchored_seq is not None:
        print(f"anchor: entry {check.anchored_seq} of {check.entries} ({check.entries - check.anchored_seq} "
              f"appended since)")
    print(f"head sha256 {check.head_sha256}")
    return 0


def _registry_show(args: argparse.Namespace) -> int:
    from harness.app.stages import open_registry, verify_registry
    from harness.gate.history import check_registry_folder

    config, store = _gate_config(args)
    registry = open_registry(config, store)
    check_registry_folder(registry.folder, store.home, configured=config.gate.registry is not None)
    verify_registry(config, store)  # a log that lost entries (deleted, truncated) is not shown as the history
    entries = registry.verify()
    if not registry.folder.exists():
        print(f"no decisions logged yet: no registry at {registry.folder}")
    elif not entries:
        print(f"no decisions logged yet: the registry {registry.folder} has no entries")
    for e in entries:
        who = f" by {e['release_manager']}" if e.get("release_manager") else ""
        moves = ", ".join(f"{a}->{'(removed)' if t is None else t['candidate']}" for a, t in e["alias_moves"].items())
        print(one_line(f"{e['seq']:>4} {e['logged_at']} {e['event']:10} {e['run_id']}/{e['candidate']} "
                       f"{e['decision']}{who}{f' [{moves}]' if moves else ''}  {e['record_id']}"))
    for alias, target in sorted(registry.aliases().items()):
        print(f"alias {alias}: {target['run_id']}/{target['candidate']} (entry {target['seq']})")
    return 0


def _report(args: argparse.Namespace) -> int:
    from harness.app.stages import write_report_files

    config, store = _gate_config(args)
    if args.out and args.out.exists() and not args.out.is_dir():
        raise ConfigError(f"--out {args.out}: a file; name the folder for report.html and report.md")
    html, headline = write_report_files(config, store, args.out)
    print(one_line(headline))
    print(f"report -> {html}\n         {html.with_suffix('.md')}")
    if args.pdf:
        from reports.pdf import write_pdf

        print(f"         {write_pdf(html)}")
    return 0


def _history(args: argparse.Namespace) -> int:
    from harness.app.stages import open_registry, verify_registry
    from harness.gate.history import check_registry_folder, history_table, read_history

    config, store = _gate_config(args)
    registry = open_registry(config, store)
    check_registry_folder(registry.folder, store.home, configured=config.gate.registry is not None)
    verify_registry(config, store)  # a log that lost entries (deleted, truncated) is not shown as the history
    history = read_history(registry, store.home)
    print(history.model_dump_json(indent=2) if args.json else history_table(history.entries, history.aliases))
    return 0


def _run(args: argparse.Namespace) -> int:
    from harness.app.config import load_pipeline_config
    from harness.app.pipeline import run_pipeline
    from harness.app.stages import open_registry
    from harness.core.store import RunStore
    from harness.gate.history import history_table, read_history

    config = load_pipeline_config(args.config_file, args.assignments, {"run": args.run})
    store = RunStore(config.run, args.home)
    _check_verdict_outputs(args, config, store)
    with _human_output(args):
        result = run_pipeline(config, store, force=args.force)
        verdict = _verdict(args, config, store, result.decision)
        total = sum(result.seconds.values())
        print(f"\n{result.decision.reason}\nreport: {result.report}\n        {result.report.with_suffix('.md')}")
        history = read_history(open_registry(config, store), store.home)
        print(f"\nhistory ({history.registry}):\n{history_table(history.entries, history.aliases)}\n")
        print(f"stages: {', '.join(f'{k} {v:.0f} s' for k, v in result.seconds.items())} (total {total / 60:.1f} min)")
        _print_holding(verdict)
        if verdict.verdict == "PENDING_REVIEW":
            where = " ".join(filter(None, [f"--config {args.config_file}", f"--run {args.run}" if args.run else "",
                                           f"--home {args.home}" if args.home else ""]))
            print(f"review pending: open the review app with\n  nift-gate review serve {where}\n"
                  f"then decide again with\n  nift-gate run {args.config_file}"
                  f"{' --run ' + args.run if args.run else ''}{' --home ' + args.home if args.home else ''}")
    return _verdict_outputs(args, verdict)


def _hide_password(url: str | None) -> str | None:
    """``url`` with the password in it (``postgresql://user:password@host/db``) masked as reviewer tokens are."""
    from urllib.parse import urlsplit

    parts = urlsplit(url) if url else None
    if parts is None or parts.password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    return parts._replace(netloc=f"{user.partition(':')[0]}:**********@{host}").geturl()


def _config_show(args: argparse.Namespace) -> int:
    import yaml

    from harness.app.config import load_pipeline_config

    shown = load_pipeline_config(args.config, args.assignments).model_dump(mode="json")
    shown["review"]["database"] = _hide_password(shown["review"]["database"])
    shown["gate"]["mlflow"]["tracking_uri"] = _hide_password(shown["gate"]["mlflow"]["tracking_uri"])
    print(yaml.safe_dump(shown, sort_keys=False), end="")
    return 0


def _config_reference(args: argparse.Namespace) -> int:
    from harness.app.config import reference_markdown

    print(reference_markdown(), end="")
    return 0


def _data_build(args: argparse.Namespace) -> int:
    from harness.app.config import load_pipeline_config
    from harness.core.store import RunStore
    from harness.data.build import build_pairs

    config = load_pipeline_config(args.config, args.assignments, {
        "run": args.run, "data.corpus.path": args.corpus, "data.corpus.hub_dataset": args.hub_dataset,
        "data.corpus.text_field": args.text_field, "data.teacher.model": args.teacher,
        "data.teacher.backend": args.teacher_backend, "data.teacher.base_url": args.base_url,
        "data.limit": args.limit, "data.seed": args.seed, "data.teacher.threads": args.threads})
    store = RunStore(config.run, args.home)
    records = build_pairs(config.data, store, force=args.force, variants=args.variant)
    for record in records:
        folder = store.stage_dir("data", record.variant)
        print(f"data [{record.variant}]: {record.rows} pairs, {record.failed_rows} failed -> {folder}")
        print(f"  card: {folder / 'card.md'}")
        if args.show_card:
            print((folder / "card.md").read_text(encoding="utf-8"))
    return 0


def _train(args: argparse.Namespace) -> int:
    from harness.app.config import load_pipeline_config
    from harness.core.store import RunStore
    from harness.train.train import select_checkpoints, train_checkpoint

    config = load_pipeline_config(args.config, args.assignments, {"run": args.run})
    store = RunStore(config.run, args.home)
    for entry in select_checkpoints(config.train, args.name, args.threads):
        record = train_checkpoint(entry, store, force=args.force)
        if record is not None:
            folder = store.stage_dir("train", entry.name)
            print(f"train [{entry.name}]: {record.steps} steps, {record.tokens_seen} tokens, "
                  f"{record.tokens_per_s} tokens/s -> {folder / record.eval_dir}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from harness.app.config import load_pipeline_config
    from harness.bench.bench import run_bench
    from harness.core.store import RunStore

    config = load_pipeline_config(args.config, args.assignments, {
        "run": args.run, "bench.tasks": args.task, "bench.limit": args.limit, "bench.threads": args.threads})
    store = RunStore(config.run, args.home)
    record = run_bench(config.bench, store, force=args.force)
    if record is None:  # a rank other than 0 under `accelerate launch`: rank 0 wrote the bench and prints it
        return 0
    print(f"bench [{record.candidate}] -> {store.stage_dir('bench', record.candidate)}")
    for c in record.comparisons:
        ci = "n/a" if c.ci_low is None else f"[{c.ci_low:+.3f}, {c.ci_high:+.3f}]"
        print(f"  {c.task} {c.metric} vs {c.baseline}: {c.candidate_mean:.3f} vs {c.baseline_mean:.3f}, "
              f"diff {c.mean_difference:+.3f} {ci}, {c.test} p={c.p_value:.3g}, n={c.n}")
    for p in record.pairwise:
        rate = "n/a" if p.win_rate is None else f"{p.win_rate:.2f}"
        print(f"  pairwise vs {p.baseline}: win rate {rate} (n={p.n}, {p.unparseable} unparseable; judge {p.judge})")
    return 0


def _audit(args: argparse.Namespace) -> int:
    from harness.app.config import load_pipeline_config
    from harness.app.stages import run_audits
    from harness.core.store import RunStore

    config = load_pipeline_config(args.config, args.assignments, {
        "run": args.run, "audit.toxicity.limit_per_group": args.limit_per_group,
        "audit.toxicity.samples_per_prompt": args.samples, "audit.threads": args.threads,
        "audit.hallucination.halueval.path": args.halueval, "audit.hallucination.truthfulqa.path": args.truthfulqa})
    store = RunStore(config.run, args.home)
    records = run_audits(config, store, force=args.force, only=args.only)
    if record := records.get("toxicity"):
        note = f" ({record.scorer.note})" if record.scorer.fallback else ""
        print(f"audit [toxicity] scorer {record.scorer.name}{note} -> {store.stage_dir('audit', 'toxicity')}")
        for model, attributes in record.summaries.items():
            for attribute, summary in attributes.items():
                emt, prob = summary.overall.expected_max_toxicity, summary.overall.toxicity_probability
                print(f"  {model} {attribute}: expected max {emt.value:.3f} [{emt.ci_low:.3f}, {emt.ci_high:.3f}], "
                      f"probability {prob.value:.3f} [{prob.ci_low:.3f}, {prob.ci_high:.3f}], n={emt.n} prompts")
    if record := records.get("hallucination"):
        print(f"audit [hallucination] -> {store.stage_dir('audit', 'hallucination')}")
        for check, reason in record.skipped.items():
            print(f"  skipped {check}: {reason}")
        for value in record.metric_values():
            ci = "" if value.ci_low is None else f" [{value.ci_low:.3f}, {value.ci_high:.3f}]"
            print(f"  {value.model} {value.metric}: {value.value:.3f}{ci}, n={value.n}")
    return 0


def _review_config(args: argparse.Namespace, signs_in: bool = False):
    """The review section and the run. A tokens file that is there but malformed is refused by every review
    command, not at the first sign-in; a missing one only where people sign in (``serve``): a machine that fills
    the queue or summarises it need not hold the reviewers' tokens."""
    from harness.app.config import load_pipeline_config
    from harness.core.store import RunStore

    config = load_pipeline_config(args.config, args.assignments, {"run": args.run})
    tokens_file = config.review.tokens_file
    if signs_in or (tokens_file and Path(tokens_file).expanduser().exists()):
        config.review.tokens()
    return config.review, RunStore(config.run, args.home)


def _review_enqueue(args: argparse.Namespace) -> int:
    from sqlalchemy import make_url

    from harness.review.enqueue import enqueue
    from harness.review.store import database_url

    config, store = _review_config(args)
    result = enqueue(config, store)
    added = ", ".join(f"{k} {v}" for k, v in sorted(result.added.items())) or "nothing new"
    print(f"review [{result.candidate}]: queued {added}; {result.skipped_duplicates} duplicates skipped; "
          f"{result.assignments} assignments -> {make_url(database_url(config, store)).render_as_string(hide_password=True)}")
    return 0


def _review_serve(args: argparse.Namespace) -> int:
    """Replace this process with ``streamlit run dashboard/app.py`` (exec, no child): SIGTERM or Ctrl-C reach
    the server itself, which stops and frees its port; a supervisor sees one process."""
    import json

    from harness.core.errors import ConfigError
    from harness.review.config import load_review_section
    from harness.review.store import database_url

    config, store = _review_config(args, signs_in=True)
    assignments = args.assignments + ([f"run={args.run}"] if args.run else [])
    load_review_section(args.config, assignments)  # what the app reads (guidelines included): refused now, not later
    database_url(config, store)  # creates the run's review folder for the SQLite default
    app = Path(importlib.util.find_spec("dashboard.app").origin)
    extra = [a for a in args.streamlit_args if a != "--"]
    told = any(a == "--server.address" or a.startswith("--server.address=") for a in extra)
    if told and args.host:
        raise ConfigError("review serve: give the address once: --host or --server.address, not both")
    # Safe defaults first, so a flag after -- still overrides them: listen on this machine only, show a visitor
    # (signed in or not) no exception message or traceback, no developer toolbar (Deploy, Rerun), send no usage
    # statistics, open no browser, and do not rerun on edits of the code.
    defaults = [*([] if told else ["--server.address", args.host or "127.0.0.1"]),
                "--client.showErrorDetails", "none", "--client.toolbarMode", "viewer",
                "--browser.gatherUsageStats", "false", "--server.headless", "true",
                "--server.fileWatcherType", "none"]
    env = {**os.environ, "NIFT_REVIEW_CONFIG": str(args.config.resolve()) if args.config else "",
           "NIFT_REVIEW_SET": json.dumps(assignments),
           **({"NIFT_HOME": str(Path(args.home).resolve())} if args.home else {})}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "streamlit", "run", str(app), *defaults, *extra], env)
    return 0  # only where exec is replaced (tests): a real exec never returns


def _review_summary(args: argparse.Namespace) -> int:
    from harness.review.summary import summarise_review

    config, store = _review_config(args)
    record = summarise_review(config, store, args.candidate)
    rate = "n/a" if record.approval_rate is None else f"{record.approval_rate:.3f}"
    agree = "n/a" if record.agreement is None or record.agreement.value is None else (
        f"{record.agreement.statistic} {record.agreement.value:.3f} (n={record.agreement.n})")
    print(f"review [{record.candidate}]: {record.items_with_quorum}/{record.items_total} items with quorum, "
          f"{record.labels} labels by {record.reviewers} reviewers, approval {rate}, agreement {agree} "
          f"-> {store.root / 'review' / 'record.json'}")
    for p in record.pairwise:
        rate = "n/a" if p.win_rate is None else f"{p.win_rate:.2f}"
        print(f"  blind pairwise vs {p.baseline}: {p.wins} wins, {p.losses} losses, {p.ties} ties, win rate {rate}")
    if record.disputed_items:
        print(f"  disputed items: {record.disputed_items} ({record.adjudicated_items} adjudicated, "
              f"{record.adjudication_pending} waiting for adjudication)")
    judged = record.judge_agreement
    if judged is not None:
        share = "n/a" if judged.with_ties.rate is None else f"{judged.with_ties.rate:.2f}"
        kappa = "n/a" if judged.kappa is None else f"{judged.kappa:.2f}"
        print(f"  judge {judged.judge or '(unnamed)'} vs reviewers: agreement {share} with ties "
              f"(n={judged.with_ties.n}), kappa {kappa}, on {judged.items} pairs")
    return 0


def _review_export(args: argparse.Namespace) -> int:
    from harness.review.export import check_export_folder, export_format, export_labels, labels_frame
    from harness.review.store import open_store

    config, store = _review_config(args)
    fmt = export_format(args.out, args.format)  # before the store is opened: a bad suffix writes nothing
    check_export_folder(args.out)  # nor does an --out whose folder is a file
    review = open_store(config, store, create=False)  # a run with no review store is refused, not created
    try:
        path = export_labels(review, args.out, fmt, run_folder=store.root, force=args.force)
        print(f"review: {len(labels_frame(review))} labels and judgments -> {path}")
    finally:
        review.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(-1 if args.quiet else args.verbose)
    handlers = {("data", "build"): _data_build, ("train", None): _train, ("bench", None): _bench,
                ("audit", None): _audit, ("run", None): _run, ("config", "show"): _config_show,
                ("config", "reference"): _config_reference,
                ("review", "enqueue"): _review_enqueue, ("review", "serve"): _review_serve,
                ("review", "summary"): _review_summary, ("review", "export"): _review_export,
                ("gate", None): _gate, ("override", None): _override,
                ("registry", "verify"): _registry_verify, ("registry", "show"): _registry_show,
                ("history", None): _history, ("report", None): _report, ("launch", None): _launch}
    try:
        status = handlers[(args.command, getattr(args, f"{args.command}_command", None))](args)
        sys.stdout.flush()  # a reader that stopped early (`| head`) is found here, not at interpreter exit
        return status
    except NiftError as exc:
        print(f"nift-gate: error: {one_line(exc)}", file=sys.stderr)  # one line, whatever a message quotes
        return exc.exit_code
    except BrokenPipeError:
        # stdout's reader is gone (`history --json | head`): stop quietly, as a command killed by SIGPIPE does;
        # stdout goes to /dev/null so that flushing it at exit does not complain
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except OSError as exc:  # a path given that cannot be used (a file where a folder belongs, no permission)
        print(f"nift-gate: error: {f'{exc.filename}: ' if exc.filename else ''}{exc.strerror or exc}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nift-gate: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
