"""The lesson format: bad files are refused with file, line and reason, and
every lesson in the library plays through headlessly (the same check as
`manage.py lessons play`), so a change to a lab that breaks a lesson fails CI."""

from __future__ import annotations

import textwrap

import pytest

from pattern_lab.lessons.player import play
from pattern_lab.lessons.schema import LessonError, library, parse
from simulations import labs

GOOD = textwrap.dedent("""\
    lab: leader-election
    title: A tiny lesson
    summary: One crash.
    seed: 7
    steps:
      - say: Crash the leader.
        ask:
          question: Who leads then?
          choices: [n4, n5]
          answer: "nodes[?role == 'leader'].id | [0]"
        do: [crash n5]
        expect:
          when: "node.n4.role == 'leader'"
          within: 6s
    """)


def refused(text: str) -> LessonError:
    with pytest.raises(LessonError) as info:
        parse(text, "bad.yaml")
    return info.value


def test_a_good_lesson_loads_and_plays():
    lesson = parse(GOOD, "good.yaml")
    transcript = play(lesson)
    assert transcript.ok, transcript.lines()
    assert transcript.results[0].correct == "n4"


def test_bad_yaml_is_refused_with_its_line():
    err = refused(GOOD.replace("title: A tiny lesson", "title: [unclosed"))
    assert err.source == "bad.yaml" and err.line in (2, 3) and "not valid YAML" in err.reason


def test_an_unknown_field_is_named_with_its_line():
    err = refused(GOOD.replace("  - say: Crash the leader.", "  - say: Crash the leader.\n    note: hi"))
    assert err.line == 7
    assert "unknown field 'note'" in err.reason and "step [1]" in err.reason


def test_an_expression_that_does_not_compile_is_refused():
    err = refused(GOOD.replace("node.n4.role == 'leader'", "node.n4.role == = 'leader'"))
    assert err.line == 13 and "does not compile" in err.reason


def test_a_choice_list_of_one_is_refused():
    err = refused(GOOD.replace("choices: [n4, n5]", "choices: [n4]"))
    assert err.line == 9 and "at least 2" in err.reason


def test_a_step_with_nothing_to_do_is_refused():
    err = refused(GOOD + "  - say: Just words.\n")
    assert err.line == 15 and "nothing to do" in err.reason


def test_yaml_tags_cannot_run_code():
    err = refused(GOOD.replace("title: A tiny lesson", "title: !!python/object/apply:os.system ['true']"))
    assert err.line == 2 and "tags" in err.reason


def test_aliases_are_refused():
    err = refused(GOOD.replace("summary: One crash.", "summary: &s One crash.\nminutes: *s"))
    assert "aliases" in err.reason


def test_a_huge_file_is_refused():
    assert "at most" in refused(GOOD + "#" * 300_000).reason


def test_unknown_lab_param_and_action_are_refused():
    err = refused(GOOD.replace("lab: leader-election", "lab: nope"))
    assert "no lab 'nope'" in err.reason and err.line == 1
    err = refused(GOOD.replace("seed: 7", "seed: 7\nparams: {speedy: 1}"))
    assert "no param 'speedy'" in err.reason and err.line == 5
    err = refused(GOOD.replace("do: [crash n5]", "do: [explode n5]"))
    assert "no action 'explode'" in err.reason and err.line == 11


def test_an_answer_off_the_choices_fails_the_play():
    lesson = parse(GOOD.replace("choices: [n4, n5]", "choices: [n1, n2]"))
    transcript = play(lesson)
    assert not transcript.ok and "none of the choices" in transcript.results[0].error


def test_an_expect_that_never_holds_fails_the_play():
    lesson = parse(GOOD.replace("node.n4.role == 'leader'", "node.n1.role == 'leader'"))
    transcript = play(lesson)
    assert not transcript.ok and "did not become true" in transcript.results[0].error


# -- the library ------------------------------------------------------------

FLAGSHIPS = ("circuit-breaker", "leader-election", "split-brain", "saga")


@pytest.mark.parametrize("key", sorted(library()))
def test_every_lesson_plays_through(key):
    item = library()[key]
    transcript = play(item.lesson, key)
    assert transcript.ok, "\n".join(transcript.lines())
    assert len(item.lesson.steps) >= 5, f"{key}: a lesson has at least five steps"
    assert item.lesson.questions() >= 2, f"{key}: a lesson asks at least two predict-then-observe questions"


def test_every_lab_has_its_lessons():
    counts = {slug: 0 for slug in labs()}
    for item in library().values():
        counts[item.lesson.lab] += 1
    missing = [slug for slug, n in counts.items() if n < (2 if slug in FLAGSHIPS else 1)]
    assert not missing, f"labs without enough lessons: {missing}"


def test_numeric_choices_keep_their_own_words():
    # 0 and 1 compare equal to False and True: they must not read "no" and "yes".
    lesson = parse(GOOD.replace("choices: [n4, n5]", "choices: [0, 1, true]"))
    assert [c.label for c in lesson.steps[0].ask.choices] == ["0", "1", "yes"]


def test_an_expect_that_holds_without_the_steps_commands_fails_the_play():
    # Five nodes are there from the start: the page would complete the step
    # before the learner crashed anything (or while Show me was on its way).
    lesson = parse(GOOD.replace("node.n4.role == 'leader'", "length(nodes) == `5`"))
    transcript = play(lesson)
    assert not transcript.ok and "without the step's commands (crash n5)" in transcript.results[0].error
    assert "holds at 0ms" in transcript.results[0].error


def test_an_expect_that_holds_soon_after_the_step_starts_without_its_commands_fails_the_play():
    # Not true at the start, but a moment later with nothing done: the step
    # would complete before the learner could click Show me.
    lesson = parse(GOOD.replace("node.n4.role == 'leader'", "t >= `300`"))
    transcript = play(lesson)
    assert not transcript.ok and "without the step's commands (crash n5)" in transcript.results[0].error
    assert "holds at 300ms" in transcript.results[0].error, transcript.lines()
