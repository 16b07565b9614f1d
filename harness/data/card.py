"""The data card: a Markdown summary written beside each built dataset, for the humans who gate it."""

from __future__ import annotations

import json

from harness.core.models import EMBEDDED_MODELS
from harness.data.corpus import SUFFIX_FORMATS
from harness.data.record import NiftDatasetRecord, NiftPair


def _table(rows: list[tuple[str, object]], header: tuple[str, str]) -> str:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---:|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines)


def _quote(text: str, limit: int = 400) -> str:
    text = text if len(text) <= limit else text[:limit] + " [...]"
    return "\n".join("> " + line if line else ">" for line in text.splitlines())


def _turns_line(record: NiftDatasetRecord) -> list[str]:
    """What a conversation of several turns is made of (nothing for one-turn pairs: the headline says it)."""
    if record.turns == 1:
        return []
    n = record.turns
    reply = ("the teacher's reply to the conversation so far (its own earlier replies included)" if record.distill
             else "the real segment that follows it (no distillation: the conversation is the document, in order)")
    return ["", (f"Turns per pair: **{n}**. Each document is cut into {2 * n} segments at sentence ends; user turn k "
                 f"is segment 2k-1 and its assistant turn is {reply}. The real segment after every user turn is kept "
                 "in the pair (`references`).")]


def render_card(record: NiftDatasetRecord, examples: list[NiftPair]) -> str:
    c = record.counts
    g = record.generation
    teacher = record.teacher or {}
    what = (f"{record.rows} user/assistant pairs" if record.turns == 1 else
            f"{record.rows} conversations of {record.turns} user/assistant turns ({record.rows * record.turns} "
            "assistant turns)")
    responses = ((f"continuations written by the teacher `{teacher.get('model')}` ({teacher.get('backend')})."
                  if record.turns == 1 else
                  f"written by the teacher `{teacher.get('model')}` ({teacher.get('backend')}), turn by turn.")
                 if record.distill else
                 "the documents' real second parts (no distillation)." if record.turns == 1 else
                 "the documents' real following segments (no distillation).")
    later = [("dropped: a later user turn reads as an instruction", c["dropped_instruction_like_turn"])] \
        if "dropped_instruction_like_turn" in c else []
    parts = [
        f"# NIFT dataset card: `{record.variant}`",
        "",
        (f"{what} built from {c['documents_read']} documents of `{record.inputs[0].id}` "
        f"(run `{record.run_id}`, record `{record.record_id}`)."),
        "Responses are " + responses,
        *_turns_line(record),
        "",
        "## Filters",
        "",
        _table([("rows with no text (not documents)", c["dropped_empty_text"]),
                ("documents read", c["documents_read"]),
                ("dropped: too short", c["dropped_too_short"]), ("dropped: too long", c["dropped_too_long"]),
                ("dropped: exact duplicate", c["dropped_exact_duplicate"]),
                ("dropped: near duplicate", c["dropped_near_duplicate"]),
                ("dropped: instruction-like (rules)", c["dropped_instruction_like"]),
                ("documents kept", c["documents_kept"]), ("documents used (after --limit)", c["documents_used"]),
                ("dropped: too short to cut" + (f" into {2 * record.turns} segments" if record.turns > 1 else ""),
                 c["dropped_cut_too_short"]),
                *later,
                ("teacher failures (failed.jsonl)", c["teacher_failed"]),
                ("dropped: empty response", c["dropped_empty_response"]),
                ("dropped: contaminated", c["dropped_contaminated"]),
                ("**pairs**", f"**{c['pairs']}**")], ("step", "count")),
    ]
    if record.unread_files:
        shown = record.unread_files[:20]
        more = f" and {len(record.unread_files) - len(shown)} more (record.json lists them all)" \
            if len(record.unread_files) > len(shown) else ""
        parts += ["", f"**{len(record.unread_files)} files in the corpus folder were not read** (no corpus type: "
                  f"{', '.join(SUFFIX_FORMATS)}): " + ", ".join(f"`{f}`" for f in shown) + more + "."]
    if record.instruction_rules:
        parts += ["", "Instruction-likeness rules that fired: "
                  + ", ".join(f"`{k}` {v}" for k, v in sorted(record.instruction_rules.items())) + "."]
    share = c["dropped_instruction_like"] / max(1, c["documents_read"] - c["dropped_too_short"] - c["dropped_too_long"])
    parts += ["", f"Instruction-like share by rules: {share:.1%} of in-bounds documents."]
    if record.judge:
        j = record.judge
        shown = "n/a" if j.share_instruction_like is None else f"{j.share_instruction_like:.1%}"
        parts += [(f"Judge `{j.model}` labelled {j.labelled} sampled user turns: {j.instruction_like} instruction-like, "
                  f"{j.prose} prose, {j.unparseable} unparseable; instruction-like share {shown} "
                  f"(of the {j.instruction_like + j.prose} parseable labels).")]
        if j.model in EMBEDDED_MODELS:
            parts += [("This judge is the 135M-parameter embedded model: a weak judge whose labels only exercise "
                      "the pipeline; use a strong judge (filters.judge.teacher) for a share worth reading.")]
    else:
        parts += ["No judge model labelled a sample (filters.judge.enabled is off)."]
    parts += ["", "## Contamination", ""]
    if record.contamination:
        parts.append(_table([(f"`{name}` ({s['prompts']} prompts, {s['too_short']} shorter than the n-gram)", s["hits"])
                             for name, s in record.contamination.items()],
                            (f"prompt set ({record.config['filters']['ngram']}-gram overlap)", "hits")))
        parts += ["", "Pairs with hits are dropped and listed in `contamination.jsonl`."]
    else:
        parts.append("No evaluation or audit prompt sets were configured: contamination was **not** checked.")
    parts += ["", "## Lengths (words)", "",
              "| turn | mean | 10% | median | 90% | max |", "|---|---:|---:|---:|---:|---:|"]
    for name, stats in record.lengths.items():
        if stats.get("count"):
            parts.append(f"| {name.replace('_words', '')} | {stats['mean']} | {stats['10%']} | {stats['50%']} | "
                         f"{stats['90%']} | {stats['max']} |")
    parts += ["", "## Teacher cost", ""]
    if record.distill:
        rate = g.get("completion_tokens_per_s")
        parts += [_table([("requests", g["requests"]), ("prompt tokens", g["prompt_tokens"]),
                          ("completion tokens", g["completion_tokens"]),
                          ("generation seconds", g["seconds"]),
                          ("completion tokens/s", rate if rate is not None else "n/a (all shards resumed)"),
                          ("shards (resumed)", f"{g['shards']} ({g['resumed_shards']})"),
                          ("estimated cost (USD)", f"{g['estimated_cost_usd']:.4f}")], ("", "")),
                  "",
                  (f"Cost at ${g['price_per_1k_prompt_tokens']}/1k prompt and ${g['price_per_1k_completion_tokens']}/1k "
                  "completion tokens (teacher.price_per_1k_* in the config); a local teacher's real cost is its "
                  "machine time.")]
    else:
        parts.append("No teacher: responses are the original text.")
    parts += ["", "## Examples", ""]
    for pair in examples:
        parts += [f"**{pair.id}**", ""]
        for k, message in enumerate(pair.messages):
            turn = f" (turn {k // 2 + 1})" if pair.turns > 1 else ""
            parts += [f"{message['role'].capitalize()}{turn}:", "", _quote(message["content"]), ""]
    parts += ["## Provenance", "", "```json",
              json.dumps({"fingerprint": record.fingerprint, "inputs": [i.model_dump() for i in record.inputs],
                          "code_revision": record.code_revision, "versions": record.versions}, indent=2),
              "```", ""]
    return "\n".join(parts)
