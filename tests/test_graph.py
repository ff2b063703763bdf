"""The steps scorer (rlearly.data.graph): a solution is correct when its equations are the problem's steps in an
order the dependencies allow, with the last result boxed. Hand-worked cases on one problem."""
from rlearly.data.graph import equations, follows_prefix, verify_steps
from rlearly.data.math_world import Chain, Event, Spec, is_correct, question_text

# Ava has 7 marbles, buys 5 more (12), loses 3 (9). Ben has 4 marbles, his grow to 2 times as many (8).
# How many more marbles does Ava have than Ben?  9 - 8 = 1.
AVA = Chain("Ava", "f", 7, (Event("+", 5, 0), Event("-", 3, 1)))
BEN = Chain("Ben", "m", 4, (Event("*", 2, 1),))
DIFF = Spec("marbles", (AVA, BEN), "-", minuend=0)
SUM = Spec("marbles", (AVA, BEN), "+")
BOX = " The answer is \\boxed{{{}}}."


def test_the_problem_as_told():
    assert question_text(DIFF).endswith("How many more marbles does Ava have than Ben?")
    told_second = Spec("marbles", (BEN, AVA), "-", minuend=1)  # the minuend told second: same computation
    assert question_text(told_second).endswith("How many more marbles does Ava have than Ben?")
    assert verify_steps("4 * 2 = 8. 7 + 5 = 12. 12 - 3 = 9. 9 - 8 = 1." + BOX.format(1), told_second)


def test_every_valid_order_and_operand_order_is_accepted():
    for text in ("Ava has 7 + 5 = 12 marbles. She now has 12 - 3 = 9 marbles. Ben has 4 * 2 = 8 marbles. "
                 "Ava has 9 - 8 = 1 more marbles than Ben.",
                 "4 * 2 = 8. 7 + 5 = 12. 12 - 3 = 9. The difference is 9 - 8 = 1.",  # Ben first
                 "7 + 5 = 12. 2 * 4 = 8. 12 - 3 = 9. 9 - 8 = 1.",  # interleaved; * in either operand order
                 "5 + 7 = 12. 12 - 3 = 9. 4 * 2 = 8. 9 - 8 = 1.",
                 "7 + 5 - 3 = 9. 4 * 2 = 8. 9 - 8 = 1."):  # a folded equation counts as its two operations
        assert verify_steps(text + BOX.format(1), DIFF), text


def test_anything_else_is_not_a_solution():
    good = "7 + 5 = 12. 12 - 3 = 9. 4 * 2 = 8. 9 - 8 = 1."
    for text in (BOX.format(1),  # the right answer with no work
                 "7 + 5 = 12. 12 - 3 = 9. 9 - 8 = 1." + BOX.format(1),  # Ben's step left out (done "in the head")
                 good + " 1 + 1 = 2." + BOX.format(2),  # an extra equation, and its result boxed
                 good + " 8 + 1 = 9." + BOX.format(1),  # an extra true equation
                 good + BOX.format(2),  # the box is not the last result
                 good.replace("12 - 3 = 9", "3 - 12 = 9"),  # false, and - has one operand order
                 "12 - 3 = 9. 7 + 5 = 12. 4 * 2 = 8. 9 - 8 = 1." + BOX.format(1),  # a step before the one it uses
                 "7 + 5 = 12. 12 - 3 = 9. 4 * 2 = 8. 8 - 9 = 1." + BOX.format(1),  # the diff the wrong way round
                 "7 + 5 = 13. 13 - 3 = 10. 4 * 2 = 8. 10 - 8 = 2." + BOX.format(2),  # a slip, carried through
                 "7 * 5 = 35. 35 - 3 = 32. 4 * 2 = 8. 32 - 8 = 24." + BOX.format(24),  # a wrong operation
                 "7 + 5 = 12. 12 - 3 = 9. 4 * 2 = 8. 9 + 8 = 17." + BOX.format(17)):  # the sum, not the difference
        assert not verify_steps(text, DIFF), text
    assert verify_steps(good.replace("9 - 8 = 1", "9 + 8 = 17") + BOX.format(17), SUM)
    assert verify_steps(good.replace("9 - 8 = 1", "8 + 9 = 17") + BOX.format(17), SUM)


def test_equations_are_parsed_with_precedence_and_checked():
    assert equations("Ava has 7 + 5 = 12 marbles. (11 - 2) * 5 = 45.") == [
        (7, "+", 5, 12), (11, "-", 2, 9), (9, "*", 5, 45)]
    assert equations("After buying 5 more, Ava has 7 + 5 = 12 marbles.") == [(7, "+", 5, 12)]  # prose is not read
    assert equations("2 + 3 * 4 = 14.") == [(3, "*", 4, 12), (2, "+", 12, 14)]
    assert equations("3 + 4 = 8.") is None  # false
    assert equations("7 / 2 = 3.") is None  # division is exact
    assert equations("12 = 12.") is None and equations("= 4") is None and equations("3 + = 4") is None
    assert equations("no equations here") == []


def test_prefixes_and_the_answer_scoring():
    assert follows_prefix([(4, "*", 2, 8)], DIFF) and follows_prefix([(7, "+", 5, 12), (12, "-", 3, 9)], DIFF)
    assert not follows_prefix([(7, "+", 4, 11)], DIFF) and not follows_prefix([(12, "-", 3, 9)], DIFF)
    from rlearly.config import WorldConfig
    from rlearly.data.math_world import MathWorld, problem_key, spec_answer
    p = MathWorld(WorldConfig()).make_problem(DIFF, "test", "t-0")
    assert p.answer == spec_answer(DIFF) == 1 and problem_key(DIFF) == "D:7+5-3|4*2"
    assert is_correct(BOX.format(1), p, "answer") and not is_correct(BOX.format(1), p, "steps")
