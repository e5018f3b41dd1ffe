"""The "human numbers" corpus of the lessons, generated in code (no download).

Train is "one" .. "eight thousand", valid is "eight thousand one" .. "nine thousand nine
hundred ninety nine": English words, no "and", no hyphens, numbers joined with " , ".
"""

from __future__ import annotations

ONES = "zero one two three four five six seven eight nine".split()
TEENS = "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> str:
    """English words for 1 <= n <= 9999, e.g. 8101 -> 'eight thousand one hundred one'."""
    if not 1 <= n <= 9999:
        raise ValueError(f"n must be in 1..9999 (got {n})")
    words = []
    thousands, rest = divmod(n, 1000)
    hundreds, rest = divmod(rest, 100)
    if thousands:
        words += [ONES[thousands], "thousand"]
    if hundreds:
        words += [ONES[hundreds], "hundred"]
    if rest >= 20:
        words.append(TENS[rest // 10])
        if rest % 10:
            words.append(ONES[rest % 10])
    elif rest >= 10:
        words.append(TEENS[rest - 10])
    elif rest:
        words.append(ONES[rest])
    return " ".join(words)


def numbers_text(first: int, last: int) -> str:
    return " , ".join(number_words(n) for n in range(first, last + 1))


def human_numbers() -> tuple[str, str]:
    """The (train, valid) documents."""
    return numbers_text(1, 8000), numbers_text(8001, 9999)
