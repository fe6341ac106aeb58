"""Replay data: real crowd answers and ground truth, and the seeded draws of one simulated run.

The files are those of ``../shared/data/crowd``: ``answers.csv`` with the header
``task,worker,label`` (one row per label a worker gave) and ``gold.csv`` with ``task,gold``.
Labels are integer class indices 0..K-1.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

__all__ = ["ReplayData", "ReplayDraws", "ReplayInputError", "draw_replay", "load_replay"]


class ReplayInputError(ValueError):
    """The answers or gold file cannot be replayed; the message lists every problem found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True, slots=True)
class ReplayData:
    """Answers and truth, as index arrays.

    Attributes:
        tasks: External task id per item (only items with ground truth and answers are kept).
        workers: External worker id per worker index.
        k: Number of classes.
        item: Item of each answer, shape (L,).
        worker: Worker of each answer, shape (L,).
        label: Class given by each answer, shape (L,).
        truth: True class per item, shape (N,).
        dropped_tasks: Tasks with answers but no ground truth, left out (they cannot be scored).
    """

    tasks: list[str]
    workers: list[str]
    k: int
    item: NDArray[np.intp]
    worker: NDArray[np.intp]
    label: NDArray[np.intp]
    truth: NDArray[np.intp]
    dropped_tasks: int = 0

    @property
    def n_items(self) -> int:
        return len(self.tasks)

    @property
    def n_workers(self) -> int:
        return len(self.workers)


def _rows(path: Path, header: tuple[str, ...], problems: list[str]) -> list[list[str]]:
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except FileNotFoundError:
        problems.append(f"{path}: file not found")
        return []
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: cannot read it ({exc})")
        return []
    if not rows or tuple(c.strip() for c in rows[0]) != header:
        got = ",".join(rows[0]) if rows else "an empty file"
        problems.append(f"{path}: the first line must be the header {','.join(header)}, got {got}")
        return []
    return rows[1:]


def _class(value: str, where: str, problems: list[str]) -> int | None:
    try:
        number = int(value.strip())
    except ValueError:
        number = -1
    if number < 0:
        problems.append(f"{where}: label {value!r} is not a class index (an integer >= 0)")
        return None
    return number


def load_replay(answers_path: Path, gold_path: Path) -> ReplayData:
    """Read an answers file and its ground truth.

    Raises:
        ReplayInputError: Listing every problem (missing file, bad header, bad row, a worker
            answering a task twice, no task with both answers and truth), at most 20 of them.
    """
    problems: list[str] = []
    answer_rows = _rows(Path(answers_path), ("task", "worker", "label"), problems)
    gold_rows = _rows(Path(gold_path), ("task", "gold"), problems)
    truth: dict[str, int] = {}
    for line, row in enumerate(gold_rows, start=2):
        if len(row) != 2:
            problems.append(f"{gold_path}:{line}: expected 2 fields (task,gold), got {len(row)}")
            continue
        value = _class(row[1], f"{gold_path}:{line}", problems)
        if value is not None:
            truth[row[0].strip()] = value
    answers: list[tuple[str, str, int]] = []
    seen: set[tuple[str, str]] = set()
    for line, row in enumerate(answer_rows, start=2):
        if len(row) != 3:
            problems.append(
                f"{answers_path}:{line}: expected 3 fields (task,worker,label), got {len(row)}"
            )
            continue
        task, worker = row[0].strip(), row[1].strip()
        value = _class(row[2], f"{answers_path}:{line}", problems)
        if value is None:
            continue
        if (task, worker) in seen:
            problems.append(f"{answers_path}:{line}: worker {worker!r} answers task {task!r} again")
            continue
        seen.add((task, worker))
        answers.append((task, worker, value))
    if not problems and not any(task in truth for task, _w, _l in answers):
        problems.append(f"no task of {answers_path} has ground truth in {gold_path}")
    if problems:
        shown = problems[:20]
        if len(problems) > 20:
            shown.append(f"... and {len(problems) - 20} more problems")
        raise ReplayInputError(shown)
    return _index(answers, truth)


def _index(answers: Iterable[tuple[str, str, int]], truth: dict[str, int]) -> ReplayData:
    kept = [a for a in answers if a[0] in truth]
    all_tasks = {a[0] for a in answers}
    tasks = sorted({a[0] for a in kept})
    workers = sorted({a[1] for a in kept})
    task_ix = {t: i for i, t in enumerate(tasks)}
    worker_ix = {w: i for i, w in enumerate(workers)}
    item = np.fromiter((task_ix[a[0]] for a in kept), dtype=np.intp, count=len(kept))
    worker = np.fromiter((worker_ix[a[1]] for a in kept), dtype=np.intp, count=len(kept))
    label = np.fromiter((a[2] for a in kept), dtype=np.intp, count=len(kept))
    true = np.array([truth[t] for t in tasks], dtype=np.intp)
    k = max(2, int(label.max()) + 1, int(true.max()) + 1)
    return ReplayData(
        tasks=tasks,
        workers=workers,
        k=k,
        item=item,
        worker=worker,
        label=label,
        truth=true,
        dropped_tasks=len(all_tasks) - len(tasks),
    )


@dataclass(frozen=True, slots=True)
class ReplayDraws:
    """The seeded draws of one run: which items are gold, and the order answers are served in.

    Attributes:
        gold: Whether each item is a gold item, shape (N,).
        order: Answer indices grouped by item (items in index order), each item's answers in a
            random order, shape (L,).
        start: Where each item's answers begin in ``order``, shape (N + 1,).
    """

    gold: NDArray[np.bool_]
    order: NDArray[np.intp]
    start: NDArray[np.intp]

    def answers_of(self, item: int) -> NDArray[np.intp]:
        """Item ``item``'s answers, in serving order."""
        return self.order[self.start[item] : self.start[item + 1]]

    def first_k(self, k: int) -> NDArray[np.intp]:
        """The first ``k`` answers (or all, if fewer) of every item, in serving order."""
        rank = np.arange(self.order.shape[0]) - np.repeat(self.start[:-1], np.diff(self.start))
        return self.order[rank < k]


def draw_replay(data: ReplayData, gold_fraction: float, rng: np.random.Generator) -> ReplayDraws:
    """Pick ``round(gold_fraction * N)`` gold items at random and shuffle each item's answers."""
    if not 0.0 <= gold_fraction < 1.0:
        raise ValueError(f"the gold fraction must be in [0, 1), got {gold_fraction}")
    n = data.n_items
    gold = np.zeros(n, dtype=np.bool_)
    gold[rng.permutation(n)[: round(gold_fraction * n)]] = True
    shuffled = rng.permutation(data.item.shape[0])
    # A stable sort by item keeps the shuffled order within each item.
    order = shuffled[np.argsort(data.item[shuffled], kind="stable")].astype(np.intp)
    start = np.zeros(n + 1, dtype=np.intp)
    start[1:] = np.cumsum(np.bincount(data.item, minlength=n))
    return ReplayDraws(gold=gold, order=order, start=start)
