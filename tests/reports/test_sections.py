"""The report's section extension point: a module in reports/sections is found, placed by its ORDER in both
formats, escaped like every other part, and a section that fails stops the report instead of vanishing."""

import re
import sys
import textwrap

import pytest
from gate_records import CANDIDATE, config_for, decide_run, standard_run, write_policy

from reports import build, sections
from reports.sections import DETAIL_ORDER, SectionError, discover

TOY = '''
ORDER = {order}
TITLE = "Toy <note>"
CALLS = []

def build(evidence, store):
    CALLS.append((evidence.candidate, evidence.decision.decision, store.run_id))
    if {fail}:
        raise ValueError("the toy broke")
    if {omit}:
        return None
    return {{"line": "<b>seen</b> by " + evidence.candidate, "n": 0.5}}
'''


@pytest.fixture
def toy_section(tmp_path, monkeypatch):
    """Install a section module ``toy_sections.toy_note`` and its two templates; return a function that
    (re)writes the module with the given ORDER and behaviour and makes it the only discovered section."""
    package = tmp_path / "toy_sections"
    package.mkdir()
    (package / "__init__.py").write_text("")
    templates = tmp_path / "templates" / "sections"
    templates.mkdir(parents=True)
    (templates / "toy_note.html.j2").write_text('<p class="toy">{{ s.line }} ({{ s.n | fmt(2) }})</p>\n')
    (templates / "toy_note.md.j2").write_text("Toy line: {{ s.line | md }} ({{ s.n | fmt(2) }})\n")
    monkeypatch.setattr(build, "TEMPLATES", [build.TEMPLATES, tmp_path / "templates"])
    monkeypatch.syspath_prepend(str(tmp_path))

    def install(order=150, fail=False, omit=False):
        (package / "toy_note.py").write_text(textwrap.dedent(TOY.format(order=order, fail=fail, omit=omit)))
        for name in [m for m in sys.modules if m.startswith("toy_sections")]:
            del sys.modules[name]
        found = discover("toy_sections")
        monkeypatch.setattr(sections, "discover", lambda package=None: found)
        return found[0]

    yield install
    for name in [m for m in sys.modules if m.startswith("toy_sections")]:
        del sys.modules[name]


def _decided(tmp_path):
    home = tmp_path / "runs"
    store = standard_run(home)
    config = config_for(home, write_policy(tmp_path))
    decide_run(config, store)
    return config, store


def test_a_section_module_is_discovered_and_placed_by_its_order_in_both_formats(tmp_path, toy_section):
    module = toy_section(order=DETAIL_ORDER["policy"] + 50)  # after the policy rules, before the comparisons
    config, store = _decided(tmp_path)
    html_path = build.write_report(config.report, store, CANDIDATE)
    assert module.CALLS == [(CANDIDATE, "PROMOTE", store.run_id)]
    html = html_path.read_text()
    assert ('<section class="report-section" id="section-toy_note">\n<h2>Toy &lt;note&gt;</h2>\n'
            '<p class="toy">&lt;b&gt;seen&lt;/b&gt; by cand (0.50)</p>') in html
    assert html.index("<h2>Policy rules</h2>") < html.index('id="section-toy_note"') < html.index(
        "<h2>Candidate vs each baseline</h2>")
    md = html_path.with_suffix(".md").read_text()
    assert "## Toy &lt;note&gt;\n\nToy line: &lt;b&gt;seen&lt;/b&gt; by cand (0.50)\n" in md
    assert md.index("## Policy rules") < md.index("## Toy &lt;note&gt;") < md.index("## Candidate vs each baseline")


def test_a_section_below_100_comes_before_the_detail_and_one_above_900_after_it(tmp_path, toy_section):
    config, store = _decided(tmp_path)
    toy_section(order=50)
    md = build.write_report(config.report, store, CANDIDATE).with_suffix(".md").read_text()
    assert md.index("## Toy &lt;note&gt;") < md.index("## Policy rules")
    toy_section(order=950)
    html = build.write_report(config.report, store, CANDIDATE).read_text()
    assert html.index("<h2>Reproducibility</h2>") < html.index('id="section-toy_note"') < html.index("</body>")


def test_a_section_that_returns_none_is_omitted(tmp_path, toy_section):
    toy_section(omit=True)
    config, store = _decided(tmp_path)
    html = build.write_report(config.report, store, CANDIDATE).read_text()
    assert "section-toy_note" not in html and "Toy &lt;note&gt;" not in html


def test_a_failing_section_stops_the_report_naming_the_section(tmp_path, toy_section):
    toy_section(fail=True)
    config, store = _decided(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(SectionError, match=r"report section 'toy_note' \(toy_sections.toy_note.build\) failed: "
                                           r"ValueError: the toy broke") as failed:
        build.write_report(config.report, store, CANDIDATE, out=out)
    assert failed.value.exit_code == 2  # a NiftError: the command line prints its one line and exits 2
    assert not out.exists()  # nothing half-written


def test_a_malformed_section_module_is_refused(tmp_path, monkeypatch):
    package = tmp_path / "bad_sections"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "half.py").write_text("ORDER = 5\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SectionError, match=r"report section bad_sections.half lacks TITLE, build"):
        discover("bad_sections")


def test_the_shipped_sections_are_found_sorted_and_each_has_both_templates():
    found = discover()
    assert [m.ORDER for m in found] == sorted(m.ORDER for m in found)
    for module in found:
        name = module.__name__.rsplit(".", 1)[-1]
        for ext in ("html", "md"):
            assert (build.TEMPLATES / "sections" / f"{name}.{ext}.j2").is_file(), f"{name}.{ext}.j2"
        assert isinstance(module.TITLE, str) and re.fullmatch(r"[a-z_][a-z0-9_]*", name)
