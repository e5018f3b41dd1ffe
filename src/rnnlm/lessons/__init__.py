"""The lessons: every model of the seed documents, runnable by name, its number beside the seed's."""

from rnnlm.lessons.registry import LESSONS, LESSONS_LIST, Lesson, find_lesson, select_lessons
from rnnlm.lessons.report import Result, format_list, format_table, prepare_folder
from rnnlm.lessons.runner import LessonContext, run_lesson, run_lessons

__all__ = [
    "LESSONS",
    "LESSONS_LIST",
    "Lesson",
    "LessonContext",
    "Result",
    "find_lesson",
    "format_list",
    "format_table",
    "prepare_folder",
    "run_lesson",
    "run_lessons",
    "select_lessons",
]
