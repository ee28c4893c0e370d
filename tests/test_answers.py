"""The report's short statements, answers and forest rows, composed from findings' data:
each says no more than its verdict."""

from __future__ import annotations

import pytest

from pipeline.report import answers


def _c(verdict: str, diff: float, low: float, high: float, level: float = 0.95,
       higher: bool = True, a: str = "adam", b: str = "sgd", **extra) -> dict:
    return {"metric": "test_acc", "a": {"opt": a}, "b": {"opt": b}, "label_a": a,
            "label_b": b, "higher_is_better": higher, "n": 5, "mean_a": 0.9 + diff,
            "mean_b": 0.9, "diff": diff, "low": low, "high": high, "verdict": verdict,
            "pair_on": ["seed"], "identical": False, "level": level, **extra}


def _comparison(id: str, c: dict, text: str = "A sentence.") -> dict:
    return {"id": id, "kind": "comparison", "text": text, "data": c}


def _best(id: str, top: str, cs: list[dict], text: str = "A sentence.") -> dict:
    clear = all(c["verdict"] == "a" for c in cs)
    return {"id": id, "kind": "best", "text": text,
            "data": {"top": top, "clear": clear, "comparisons": cs, "what": "test accuracy"}}


def test_a_tie_is_indistinguishable_and_a_win_names_the_winner_first():
    tie = answers.statement(_comparison("t", _c("tie", 0.002, -0.004, 0.008)))
    assert "indistinguishable" in tie and "95% CI -0.0040 to 0.0080" in tie
    assert "higher" not in tie and "best" not in tie
    won = answers.statement(_comparison("w", _c("b", -0.03, -0.05, -0.01)))
    assert won.startswith("Sgd gives higher test accuracy than adam")
    assert "difference 0.03" in won and "indistinguishable" not in won
    lower = answers.statement(_comparison("l", _c("a", -0.03, -0.05, -0.01, higher=False)))
    assert "gives lower" in lower


def test_a_best_is_claimed_only_when_it_beats_every_other():
    clear = _best("b", "adam", [_c("a", 0.03, 0.01, 0.05), _c("a", 0.05, 0.02, 0.08,
                                                                b="momentum")])
    assert answers.statement(clear).startswith("Adam gives the best test accuracy")
    partial = _best("b", "adam", [_c("a", 0.03, 0.01, 0.05, level=0.975),
                                  _c("tie", 0.01, -0.01, 0.03, level=0.975, b="momentum")])
    text = answers.statement(partial)
    assert text.startswith("No single best") and "momentum" in text and "best test" not in text
    assert answers.confidence([clear]) == "clear"
    assert answers.confidence([partial]) == "partial"
    level = _best("b", "adam", [_c("tie", 0.01, -0.01, 0.03), _c("tie", 0.0, -0.02, 0.02)])
    assert answers.confidence([level]) == "no difference shown"
    chosen = _best("b", "sgd", [_c("b", -0.02, -0.03, -0.01, a="sgd", b="adam"),
                                _c("a", 0.05, 0.02, 0.08, a="sgd", b="none")])
    chosen["data"]["chosen_on"] = "val_acc"
    text = answers.statement(chosen)
    assert "sgd, the choice on validation accuracy" in text and "leads" not in text
    assert "ahead of none" in text and "adam does better" in text
    assert answers.tags(partial) == ["family"] and answers.tags(clear) == []


def test_confidence_follows_the_verdicts():
    win = _comparison("w", _c("a", 0.03, 0.01, 0.05))
    tie = _comparison("t", _c("tie", 0.002, -0.004, 0.008))
    estimate = {"id": "e", "kind": "estimate", "text": "A number.", "data": {}}
    assert answers.confidence([win]) == "clear"
    assert answers.confidence([tie]) == "no difference shown"
    assert answers.confidence([win, tie]) == "partial"
    assert answers.confidence([estimate]) == "descriptive"
    assert answers.confidence([estimate, tie]) == "no difference shown"


def test_one_pair_is_not_compared_nor_called_alike():
    """With fewer than two pairs there is no interval: the comparison is scored a tie,
    but no statement calls the two indistinguishable, it is no forest row, and it counts
    towards no confidence."""
    import math

    from pipeline import choices
    from pipeline.findings import best, comparison, family

    one = _c("tie", 0.22, math.nan, math.nan, n=1, a="He", b="Xavier")
    alone = _comparison("o", one)
    text = answers.statement(alone)
    assert "not compared" in text and "indistinguishable" not in text
    assert answers.forest_rows({"findings": [alone]}) == []
    assert answers.confidence([alone]) == "descriptive"
    win = _c("a", 0.03, 0.01, 0.05, b="momentum", a="He")
    top = _best("b", "He", [win, one])
    text = answers.statement(top)
    assert "not compared with Xavier" in text and "indistinguishable" not in text
    assert answers.confidence([top]) == "partial"
    fam = {"id": "f", "kind": "family", "text": "", "data": {"what": "test accuracy",
           "comparisons": [one | {"setting": "depth 20"}, win | {"setting": "depth 2"}]}}
    text = answers.statement(fam)
    assert "not compared at depth 20" in text and "He higher at depth 2" in text
    # the study stage's own sentences say the same
    c1, cw = answers.comparison(one), answers.comparison(win)
    assert "not compared" in comparison("o", c1, "test accuracy").text
    assert "indistinguishable" not in comparison("o", c1, "test accuracy").text
    b = choices.Best("He", [cw, c1], 0.63)
    text = best("b", b, "test accuracy", "inits").text
    assert "not compared with Xavier (only one paired run" in text
    assert "indistinguishable" not in text
    text = family("f", [c1, cw], "He against the rest", ["depth 20", "depth 2"],
                  "test accuracy").text
    assert "depth 20: not compared, only one paired run" in text


def test_a_best_that_is_not_clear_gives_the_means_it_compares():
    """The statement says by how much: the top's mean and each tied candidate's."""
    tie = _c("tie", 0.004, -0.01, 0.02, a="relu", b="tanh")
    beat = _c("a", 0.05, 0.02, 0.08, a="relu", b="linear")
    top = _best("b", "relu", [tie, beat])
    top["data"] |= {"top_mean": 0.904, "chosen_on": "val_acc"}
    text = answers.statement(top)
    assert "relu (0.904), the choice on validation accuracy" in text
    assert "indistinguishable from tanh (0.900)" in text and "ahead of linear" in text


def test_a_comparison_that_names_its_setting_is_labelled_with_it():
    at = _comparison("relu_vs_linear", _c("b", -0.01, -0.02, -0.005, a="relu", b="linear")
                     | {"setting": "8 units"})
    (row,) = answers.forest_rows({"findings": [at]})
    assert row["label"] == "8 units: linear − relu" and row["setting"] == "8 units"


def test_caveats_become_tags():
    edge = _comparison("e", _c("a", 0.03, 0.01, 0.05),
                       "X wins. Learning rates chosen at an edge, where the optimum may lie "
                       "past it: adam (0.3, the grid's largest).")
    assert answers.tags(edge) == []  # the tag reads the data, not the words
    from pipeline import findings as F
    from pipeline.choices import Selection

    sel = Selection("lr", "val_acc", 0.3, 0.9, [0.01, 0.1, 0.3], True,
                    limit="the grid's largest")
    f = F.Finding("e", "comparison", "X wins.", dict(edge["data"]))
    F.add_edge(f, [F.edge_item("adam", sel)], "Learning rates")
    assert "chosen at an edge" in f.text and f.data["edge"]
    assert answers.tags({"id": "e", "kind": "comparison", "text": f.text,
                         "data": f.data}) == ["edge"]
    one = F.selection("s", sel, "Learning rate")
    many = F.selections("m", {"adam": sel}, "Learning rates")
    for g in (one, many):
        assert answers.tags({"id": g.id, "kind": g.kind, "text": g.text,
                             "data": g.data}) == ["edge"]
    same = _comparison("s", _c("a", 0.03, 0.03, 0.03) | {"identical": True})
    assert answers.tags(same) == ["unreplicated"]
    assert set(answers.TAGS) >= {"edge", "family", "unreplicated", "diverged"}


def test_a_long_sentence_is_cut_at_a_clause():
    long = {"id": "e", "kind": "estimate", "data": {},
            "text": "A first clause with numbers 1.23 ± 0.04; " + "more words " * 40 + "."}
    short = answers.statement(long)
    assert len(short) <= answers.SHORT and short.startswith("A first clause")
    three = {"id": "e", "kind": "estimate", "data": {}, "text": "One. Two. Three."}
    assert answers.statement(three) == "One. Two."  # a sentence and its next, at most


def test_a_cut_never_leaves_a_parenthesis_open():
    """Cut at the last clause break outside any parenthesis, or before the one it would
    fall in; a break inside a parenthesis is no clause break."""
    inside = {"id": "e", "kind": "estimate", "data": {}, "text": (
        "Run as published (newton-cg, tol = 1), the regression of the version installed here "
        "(1.9.1; the published numbers came from earlier versions) stops before it learns: "
        "test accuracy 0.0968 (the majority class: 0.0857, which " + "is long " * 20 + ").")}
    short = answers.statement(inside)
    assert short == ("Run as published (newton-cg, tol = 1), the regression of the version "
                     "installed here (1.9.1; the published numbers came from earlier "
                     "versions) stops before it learns …")
    words = {"id": "e", "kind": "estimate", "data": {}, "text": (
        "A clause of 1.5 and then " + "word " * 30 + "(an aside 2.0 that " + "runs " * 40
        + ").")}
    short = answers.statement(words)
    assert short.count("(") == short.count(")") and short.endswith("word …")


def test_the_answer_takes_the_named_findings_else_the_first_comparison():
    estimate = {"id": "e", "kind": "estimate", "text": "A number.", "data": {}}
    win = _comparison("w", _c("a", 0.03, 0.01, 0.05))
    tie = _comparison("t", _c("tie", 0.002, -0.004, 0.008))
    analysis = {"findings": [estimate, win, tie], "answer": ["t"]}
    got = answers.answer(analysis)
    assert got["ids"] == ["t"] and got["confidence"] == "no difference shown"
    assert got["text"] == answers.statement(tie)
    assert answers.answer({"findings": [estimate, win, tie]})["ids"] == ["w"]
    assert answers.answer({"findings": [estimate, win], "answer": ["gone"]})["ids"] == ["w"]


def test_every_comparison_is_a_forest_row_with_the_winner_first():
    family = {"id": "f", "kind": "family", "text": "A family.", "data": {"comparisons": [
        _c("a", 0.03, 0.01, 0.05, level=0.975) | {"setting": "8 units"},
        _c("b", -0.03, -0.05, -0.01, level=0.975) | {"setting": "16 units"}]}}
    best = _best("b", "adam", [_c("a", 0.03, 0.01, 0.05), _c("tie", 0.01, -0.01, 0.03)])
    same = _comparison("s", _c("a", 0.03, 0.03, 0.03) | {"identical": True})
    rows = answers.forest_rows({"findings": [family, best, same]})
    assert len(rows) == 4  # the unreplicated one has no interval to draw
    first, second = rows[0], rows[1]  # a family keeps its one order in every setting
    assert first["label"] == "8 units: adam − sgd" and first["diff"] == pytest.approx(0.03)
    assert second["label"] == "16 units: adam − sgd" and second["diff"] == pytest.approx(-0.03)
    assert second["low"] == pytest.approx(-0.05) and second["level"] == 0.975
    assert [r["verdict"] for r in rows] == ["differs", "differs", "differs", "tie"]
    # elsewhere the winner, or in a tie the better mean, comes first: its better side
    won = _comparison("w", _c("b", -0.03, -0.05, -0.01))
    tie_low = _comparison("t", _c("tie", 0.004, -0.002, 0.010, higher=False))
    rows = answers.forest_rows({"findings": [won, tie_low]})
    assert rows[0]["label"] == "sgd − adam" and rows[0]["diff"] == pytest.approx(0.03)
    assert rows[1]["label"] == "sgd − adam" and rows[1]["diff"] == pytest.approx(-0.004)
    aside = _comparison("x", _c("a", 0.03, 0.01, 0.05, a="relu (the network best on val)"))
    assert answers.forest_rows({"findings": [aside]})[0]["label"] == "relu − sgd"


def test_an_estimate_drops_its_asides_before_it_is_cut_and_a_count_keeps_its_result():
    text = ("The fit recovers w within 0.001 ± 0.0002 (norms of the errors); its loss 5e-05 "
            "is 0.97 times the noise level (the expected loss at the truth), " + "and more "
            * 14 + "1.01 times the closed form.")
    short = answers.statement({"id": "e", "kind": "estimate", "data": {}, "text": text})
    assert "norms of the errors" not in short and "0.97 times the noise" in short
    assert short.endswith("closed form.") and len(short) <= answers.LONGER
    count = {"id": "c", "kind": "censored", "data": {}, "text": (
        "On spiral, sgd (lr 1) reaching loss 0.5 (logged every 5 epochs: each count up to 4 "
        "epochs late): reached in 5 of 5 seeds, after 73.0 ± 8.3 epochs on average.")}
    assert answers.statement(count) == count["text"]  # its resolution caveat kept
    two = {"id": "b", "kind": "estimate", "data": {}, "text": (
        "The mean predictor gives test loss 0.0107. At lambda 300 the fit is indistinguishable "
        "from it. The validation loss lies below every lambda's.")}
    assert answers.statement(two).endswith("indistinguishable from it.")  # its conclusion


def test_a_verdict_that_the_family_level_undoes_is_underpowered_with_the_seeds_it_needs():
    from pipeline import choices, stats

    # five pairs with spread 0.02 and mean 0.028: the 95% interval excludes zero, the
    # 98.33% one (a family of three) does not
    sd, n, diff, level = 0.02, 5, 0.028, choices.family_level(3)
    half = stats.half_width(sd, n, level)
    assert stats.half_width(sd, n) < diff < half
    fragile = _c("tie", diff, diff - half, diff + half, level=level)
    m = answers.seeds_needed(answers.comparison(fragile))
    assert m > n and stats.half_width(sd, m, level) < diff <= stats.half_width(sd, m - 1, level)
    finding = _best("b", "adam", [fragile])
    assert "underpowered" in answers.tags(finding)
    assert answers.statement(finding).endswith(f"at this spread, about {m} seeds would settle it.")
    # among several comparisons, the tag names the one it counts the seeds for
    settled = _c("a", 0.2, 0.15, 0.25, level=level, a="adam", b="sgd")
    two = _best("b", "adam", [settled, fragile | {"label_b": "momentum"}])
    assert answers.statement(two).endswith(f"about {m} seeds would settle adam vs momentum.")
    at = _best("b", "adam", [settled, fragile | {"setting": "8 units"}])
    assert answers.statement(at).endswith("would settle adam vs sgd (8 units).")
    long = fragile | {"label_a": "a" * 40, "label_b": "b" * 40}
    assert answers.statement(_best("b", "adam", [settled, long])).endswith(
        "would settle the least settled of them.")
    # a tie at 95% too, a win at the family's level, or a plain 95% comparison: settled
    for c in (_c("tie", 0.005, 0.005 - half, 0.005 + half, level=level),
              _c("a", 0.05, 0.05 - half, 0.05 + half, level=level),
              _c("tie", 0.01, -0.01, 0.03)):
        assert answers.seeds_needed(answers.comparison(c)) is None


def test_a_tie_that_holds_differences_beyond_the_effect_of_interest_is_underpowered():
    from pipeline import stats

    sd, n = 0.02, 5  # the seeds' spread of the paired differences
    half = stats.half_width(sd, n)
    wide = _c("tie", 0.004, 0.004 - half, 0.004 + half, seed_sd=sd, effect=0.01)
    m, effect, how = answers.to_resolve(answers.comparison(wide))
    # resolved where the interval would lie inside +-0.01: 0.004 + half <= 0.01
    assert effect == 0.01 and stats.half_width(sd, m) <= 0.006 < stats.half_width(sd, m - 1)
    assert how == "within"
    finding = _comparison("w", wide)
    assert "underpowered" in answers.tags(finding)
    assert answers.statement(finding).endswith(
        f"Underpowered for ±0.01: at this spread, about {m} seeds would rule out a "
        "difference of 0.01.")
    # a tie whose interval lies within the effect resolves it; no effect, nothing to say
    narrow = _c("tie", 0.001, -0.004, 0.006, seed_sd=0.004, effect=0.01)
    assert answers.to_resolve(answers.comparison(narrow)) is None
    assert answers.to_resolve(answers.comparison(
        _c("tie", 0.004, 0.004 - half, 0.004 + half, seed_sd=sd))) is None
    # narrower than the effect but off centre: 0.017 is not ruled out, 0.008 not shown
    shifted = answers.comparison(_c("tie", 0.008, -0.001, 0.017, seed_sd=0.0073, effect=0.01))
    m, _, how = answers.to_resolve(shifted)
    assert stats.half_width(0.0073, m) < 0.008 <= stats.half_width(0.0073, m - 1)
    assert how == "differs"
    off_centre = _c("tie", 0.008, -0.001, 0.017, seed_sd=0.0073, effect=0.01)
    assert answers.statement(_comparison("s", off_centre)).endswith(
        f"about {m} seeds would show a difference.")
    # two ties that more seeds would resolve different ways: no one direction is claimed
    both = answers.statement(_best("b", "adam", [wide, off_centre]))
    assert both.endswith("seeds would resolve it, one way or the other.")
    # where the test points alone hold the interval beyond the effect, no seed count helps
    by_test = _c("tie", 0.004, -0.03, 0.038, seed_sd=0.001, effect=0.01, test_points=300,
                 test_var=0.0002)
    assert answers.to_resolve(answers.comparison(by_test)) == (None, 0.01, "")
    assert "whatever the seeds" in answers.statement(_comparison("t", by_test))


def test_a_best_that_alone_has_results_says_what_its_runs_and_the_null_say():
    """Where every other candidate's runs failed, the one left is no answer by itself: the
    sentence counts its own runs that collapsed, says where its mean does not beat the null
    model, and the finding is tagged for both."""
    import pandas as pd

    from pipeline import choices
    from pipeline import findings as F
    from pipeline.findings import to_json

    rows = [{"init": init, "seed": s, "val_acc": 0.30, "test_acc": 0.28 + s / 100,
             "null_test_acc": 0.333, "null_val_acc": 0.333, "diverged": False,
             "collapsed": init == "xavier" or s < 3}
            for init in ("he", "xavier") for s in range(5)]
    b = choices.best_of(pd.DataFrame(rows), {"He": {"init": "he"}, "Xavier": {"init": "xavier"}},
                        "test_acc", choose_on="val_acc")
    assert b.top == "He" and not b.comparisons and (b.runs, b.collapsed) == (5, 3)
    f = F.best("init", b, "test accuracy", "inits")
    assert "(3 of its 5 runs collapsed)" in f.text
    assert "does not beat the null model (the majority class, 0.333)" in f.text
    tags = answers.tags(to_json(f) | {"text": f.text})
    assert {"collapsed", "null"} <= set(tags)


def test_a_ladders_caveat_names_the_model_that_did_not_converge_not_its_role():
    """A family whose pair is generic (with the step, without it) names, in its caveats,
    the model whose runs did not converge, once, though it is 'without' in one step and
    'with' in the one before."""
    import pandas as pd

    from pipeline import findings as F
    from pipeline import stats
    from pipeline.findings import to_json

    rows = [{"variant": v, "seed": s, "test_acc": acc + s / 100, "diverged": False,
             "collapsed": False, "converged": float(v != "lenet")}
            for v, acc in (("mlp", 0.80), ("lenet", 0.82), ("relu", 0.90)) for s in range(3)]
    cells = pd.DataFrame(rows)
    steps = [("mlp", "lenet"), ("lenet", "relu")]
    comps = [stats.compare(cells, {"variant": after}, {"variant": before}, "test_acc",
                           label_a="with the ingredient", label_b="without", level=0.975)
             for before, after in steps]
    f = F.family("ladder", comps, "Each ingredient", [f"{b} to {a}" for b, a in steps],
                 "test accuracy", sides=[(a, b) for b, a in steps])
    assert f.text.startswith("Not converged: lenet (3 of 3 runs)")
    assert "with the ingredient (" not in f.text.split(". ")[0]
    assert answers.statement(to_json(f) | {"text": f.text}).startswith(
        "Not converged: lenet (3 of 3 runs).")


def test_a_choice_whose_own_runs_did_not_converge_is_tagged():
    """A selection carries the share of its chosen runs that converged (stats.null_check),
    and is tagged unconverged where some did not, as a comparison of such runs is."""
    import pandas as pd

    from pipeline import stats

    rows = pd.DataFrame([{"degree": 3, "seed": s, "test_loss": 0.01, "null_test_loss": 0.02,
                          "diverged": False, "collapsed": False, "converged": float(s > 2)}
                         for s in range(5)])
    null = stats.null_check(rows, rows, "test_loss", 0.01, higher_is_better=False)
    assert null["beats_null"] and null["converged"] == pytest.approx(0.4)
    finding = {"kind": "selection", "text": "Degree 3 chosen.", "data": {"chosen": 3, **null}}
    assert "unconverged" in answers.tags(finding)
    assert "unconverged" not in answers.tags(finding | {"data": {**null, "converged": 1.0}})


def test_a_sentence_keeps_a_params_name_as_params_yaml_spells_it():
    """A sentence that starts with a label is capitalised, but not a name from params.yaml
    (leaky_relu, lr), which the report prints as the user types it."""
    from pipeline.report.numbers import sentence

    assert sentence("leaky_relu with adam gives higher test accuracy") == \
        "leaky_relu with adam gives higher test accuracy"
    assert sentence("lr 0.003 and lr 3 do not beat the null") == \
        "lr 0.003 and lr 3 do not beat the null"
    assert sentence("degree 19 and degree 3 are indistinguishable") == \
        "Degree 19 and degree 3 are indistinguishable"
