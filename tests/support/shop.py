"""The shop sample dataset of fixtures/shop: loading it, and reading its question and semantic files."""

from __future__ import annotations

from support.sample_db import SampleDatabase, parameterized  # noqa: F401

DATABASE = SampleDatabase("shop")
SHOP_DIR = DATABASE.dir
QUESTIONS_FILE = DATABASE.questions_file
SEMANTIC_FILE = DATABASE.semantic_file

ensure_loaded = DATABASE.ensure_loaded
generated = DATABASE.generated
questions = DATABASE.questions
semantic = DATABASE.semantic
scripted_answers = DATABASE.scripted_answers
