"""The HTML page and the Markdown: verdict first, rules stated, the tables and figures, provenance,
self-contained (no scripts, no links to fetch) and small."""

from __future__ import annotations

import base64
import re

import numpy as np

from obliviate.report.html import render_html
from obliviate.report.markdown import render_markdown
from obliviate.report.schema import Report
from obliviate.report.verdict import VerdictRules

PNG = b"\x89PNG\r\n\x1a\n"


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def test_verdict_comes_first_with_its_rules(page, lm_report_dict):
    assert page.index('id="verdict"') < page.index('id="headline-table"') < page.index('id="all-metrics"')
    assert "forget quality (KS p-value vs the oracle) &gt;= 0.05" in page
    assert "no attack recovers more than 25% of the removed forget knowledge" in page
    assert re.search(r"<b>npo</b>\s*<span class=\"badge pass\">PASS</span>", page)
    assert re.search(r"<b>ga</b>\s*<span class=\"badge fail\">FAIL</span>", page)
    # the thresholds on the page follow the rules given
    assert "forget_quality_min=0.3" in render_html(Report.from_dict(lm_report_dict),
                                                   VerdictRules(forget_quality_min=0.3))


def test_self_contained_and_small(page):
    assert "<script" not in page.lower() and "<link" not in page.lower() and "@import" not in page
    assert not re.search(r'(src|href)\s*=\s*"(?!data:)', page)  # every src/href is inline data
    assert "url(" not in page
    imgs = _images(page)
    # trade-off, metric bars, training curves, MIA histograms + ROC, attack bars
    assert len(imgs) == 5 and all(i.startswith(PNG) for i in imgs)
    assert page.count("<img") == 5
    assert len(page.encode()) < 2_000_000


def test_tables_and_provenance(page):
    assert "[0.300, 0.500]" in page  # npo's forget_rouge CI
    for family in ("Forget set", "Retain set", "Membership inference and privacy", "Fluency and familiarity"):
        assert f"<h3>{family}</h3>" in page
    assert 'id="attacks-table"' in page and "20%" in page and "75%" in page
    assert "Every metric before and after each attack (3 rows)" in page
    assert "obliviate demo --quick" in page and "0123456789abcdef0123456789abcdef01234567" in page
    assert "data forget" in page and "bbbb2222" in page
    assert "torch 2.3" in page
    assert "&#34;beta&#34;: 0.1" in page or '"beta": 0.1' in page  # the method config
    # citations: the report's metric plus the methods its runs name, from the plug-in registry
    assert "TOFU: A Task of Fictitious Unlearning" in page
    assert re.search(r"method <b>npo</b>:\s*Negative Preference Optimization", page)
    assert "ulira" in page and "no shadows were trained" in page  # skipped, with the reason


def test_missing_figures_say_why(lm_report_dict):
    for m in lm_report_dict["models"].values():
        m["run"] = None
    del lm_report_dict["tables"]["mia_scores"]
    page = render_html(Report.from_dict(lm_report_dict))
    assert "Not shown: the run records in this report hold no per-step losses" in page
    assert "Not shown: the report has no per-example MIA scores" in page


def test_no_oracle_is_stated(lm_report_dict):
    del lm_report_dict["models"]["oracle"]
    lm_report_dict["reference"] = None
    page = render_html(Report.from_dict(lm_report_dict))
    assert "Could not judge forgetting or privacy against the truth" in page


def test_seed_summary_shows_mean_and_spread(lm_report_dict):
    d = lm_report_dict
    d["models"] = {f"{n}/seed{s}": dict(e, name=f"{n}/seed{s}") for s in (0, 1) for n, e in d["models"].items()
                   if e["role"] != "attacked"}
    d["tables"] = {"seed_summary": {"npo": {"forget_quality": {"mean": 0.2, "std": 0.05, "n_seeds": 2}},
                                    "oracle": {"forget_quality": {"mean": 1.0, "std": 0.0, "n_seeds": 2}}}}
    page = render_html(Report.from_dict(d))
    assert "± 0.050 (n=2 seeds)" in page


def test_vision_table(vision_report_dict):
    page = render_html(Report.from_dict(vision_report_dict))
    assert 'id="vision-table"' in page and "UA ≈ref" in page and "± 1.000 (n=2 seeds)" in page
    assert "digits/random10" in page
    md = render_markdown(Report.from_dict(vision_report_dict))
    assert "## Image classification" in md and "| finetune | 2.000 ± 1.000 (n=2 seeds)" in md


def _headline_header(page: str) -> list[str]:
    import re

    table = page[page.index('id="headline-table"'):]
    return re.findall(r"<th>([^<]*)</th>", table[:table.index("</tr>")])


def test_domains_report_has_its_own_headline_verdict_and_tradeoff(domains_report_dict):
    r = Report.from_dict(domains_report_dict)
    page = render_html(r)
    # H, Mem, For, each domain's accuracy (the forget domain marked), the gap to the oracle
    assert _headline_header(page) == ["model", "role", "H ↑", "Mem ↑", "For ↑", "original ≈ref", "inverted ≈ref",
                                      "edge (forget) ≈ref", "noisy ≈ref", "Gap to oracle →0", "seconds"]
    assert "82.000\n<br><span class=\"ci\">± 1.000 (n=2 seeds)" in page
    assert "Values are means over seeds ± their std." in page
    assert "For &gt;= For(oracle) - 5 points" in page
    assert '<img alt="Forgetting vs utility"' in page  # For vs Mem, the oracle and the target marked
    assert "<h3>Domain unlearning: Mem / For / H and per-domain accuracy</h3>" in page
    md = render_markdown(r)
    assert "| adu | **PASS** |" not in md  # privacy and robustness cannot be judged: incomplete, not pass
    assert "| adu | **INCOMPLETE** |" in md and "| adu_baseline | **FAIL** |" in md


def test_multimodal_report_has_its_own_headline_and_verdict(multimodal_report_dict):
    r = Report.from_dict(multimodal_report_dict)
    page = render_html(r)
    assert _headline_header(page) == ["model", "role", "D_f AUC ≈ref", "D_f F1 ≈ref", "D_t AUC ≈ref", "D_t F1 ≈ref",
                                      "MIA entropy ↓", "MIA loss ↓", "seconds"]
    assert '<img alt="Forgetting vs utility"' in page
    assert "<h3>Image+text records: macro AUC / F1 and SVC membership</h3>" in page
    assert "| forget_mi | **FAIL** |" in render_markdown(r)


def test_markdown_carries_the_same_tables(lm_report_dict):
    md = render_markdown(Report.from_dict(lm_report_dict))
    assert md.index("## Verdict") < md.index("## Headline")
    assert "| npo | **PASS** |" in md and "| ga | **FAIL** |" in md
    assert "| model | role | forget_quality ↑ | model_utility ↑ | forget_rouge ↓ | privleak →0 |" in md
    assert "| npo | quantize_int4 | forget_prob | 0.400 | 0.500 | 20% |" in md
    assert "### Membership inference and privacy" in md
    assert "- command: `obliviate demo --quick`" in md
    assert "Negative Preference Optimization" in md


def test_one_rule_decides_whether_a_value_is_a_mean_over_seeds():
    """The page's cells, error bars and spread note and the terminal seed table share `seed_spread`."""
    from obliviate.report.content import _cell_of, seed_spread

    over3 = {"value": 2.0, "std": 0.5, "n": 3, "per_seed": [1.5, 2.0, 2.5]}
    assert seed_spread(over3) == (0.5, 3)
    assert seed_spread({"value": 2.0, "std": 0.5, "n_seeds": 4}) == (0.5, 4)
    # one seed, no std, a CI only, or not a dict: not a spread over seeds
    assert seed_spread({"value": 2.0, "std": 0.0, "n": 1, "per_seed": [2.0]}) is None
    assert seed_spread({"value": 2.0, "per_seed": [1.0, 3.0]}) is None
    assert seed_spread({"value": 2.0, "std": 0.1, "n": 200, "ci": [1.8, 2.2]}) is None
    assert seed_spread(None) is None and seed_spread(3.0) is None
    assert _cell_of(over3, None).spread == "± 0.500 (n=3 seeds)"
    assert _cell_of({"value": 2.0, "std": 0.1, "n": 200, "ci": [1.8, 2.2]}, None).spread == "[1.800, 2.200]"


def test_the_seed_table_marks_a_value_that_rests_on_fewer_seeds():
    """A method that diverged on one of three seeds is a mean over two: the terminal table says n=2."""
    import io

    from rich.console import Console

    from obliviate.report.schema import ModelEntry, Report
    from obliviate.report.table import print_seed_table

    def metric(vals):
        return {"value": float(np.mean(vals)), "std": float(np.std(vals)), "n": len(vals), "per_seed": vals,
                "direction": "lower"}

    rep = Report(kind="bench", task={"benchmark": "digits", "seeds": [0, 1, 2]})
    rep.models["full"] = ModelEntry("full", {"ua": metric([1.0, 2.0, 3.0])})
    rep.models["partial"] = ModelEntry("partial", {"ua": metric([1.0, 3.0])}, skipped={"run": "diverged"})
    rep.models["one"] = ModelEntry("one", {"ua": metric([4.0])})
    buf = io.StringIO()
    print_seed_table(rep, ["ua"], "t", {"ua": "UA"}, Console(file=buf, width=200))
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in buf.getvalue().splitlines()
            if line.startswith("│")}
    assert rows == {"full": "2.000 ± 0.816", "partial": "2.000 ± 1.000 (n=2)", "one": "4.000 (n=1)"}
