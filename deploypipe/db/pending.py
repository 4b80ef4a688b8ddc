"""Which migrations of a chain are pending on production, and whether they can run in two phases; pure, for ``plan``.

``plan`` never connects to the database, so it is told where production is (a revision from the run history or
``--from-revision``), or it is not, and then it names the revisions at which ``db.lint`` would refuse the release:
a contract migration before an expand one cannot run in two phases (:func:`deploypipe.db.phases.order_problem`).

    applied_through(chain, revision) -> set[str] | None     (None: the chain has no such revision)
    pending_part(chain, applied) -> list[ChainMigration]
    order_refusal(pending) -> OrderProblem | None           (db.lint's phase-order message)
    refused_through(chain) -> (revision, OrderProblem) | None  (the newest revision at which it is refused)
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from deploypipe.db.chain import ChainMigration
from deploypipe.db.phases import order_problem

__all__ = ["OrderProblem", "applied_through", "order_refusal", "pending_part", "refused_through"]


@dataclass(frozen=True)
class OrderProblem:
    """A contract migration before an expand one in a pending part, and db.lint's message for it."""

    contract: ChainMigration
    expand: ChainMigration
    message: str


def applied_through(chain: Sequence[ChainMigration], revision: str | None) -> set[str] | None:
    """The migrations applied when production is at ``revision`` (None: nothing applied); None when the chain has
    no such revision (a revision of another branch, several heads, a chain edited since)."""
    names = [m.name for m in chain]
    if revision is None:
        return set()
    if revision not in names:
        return None
    return set(names[:names.index(revision) + 1])


def pending_part(chain: Sequence[ChainMigration], applied: Collection[str]) -> list[ChainMigration]:
    """The chain's migrations not applied, oldest first."""
    return [m for m in chain if m.name not in applied]


def order_refusal(pending: Sequence[ChainMigration]) -> OrderProblem | None:
    """Why ``pending`` cannot run in two phases (db.lint's ``phase-order`` message), None when it can; a migration
    whose phase is unknown is left out, as db.lint leaves it out."""
    known = [m for m in pending if m.phase is not None]
    message = order_problem([m.phase for m in known if m.phase is not None])
    if message is None:
        return None
    first = next(i for i, m in enumerate(known) if m.phase is not None and m.phase.phase == "contract")
    expand = next(m for m in known[first:] if m.phase is not None and m.phase.phase == "expand")
    return OrderProblem(known[first], expand, message)


def refused_through(chain: Sequence[ChainMigration]) -> tuple[str | None, OrderProblem] | None:
    """The newest revision production can be at with the release still refused (None: only with nothing applied;
    every older revision is refused too, its pending part holds the same pair), and why; None when none is."""
    for index in range(len(chain), -1, -1):  # production at chain[index - 1]; index 0: nothing applied
        problem = order_refusal(chain[index:])
        if problem is not None:
            return (chain[index - 1].name if index else None), problem
    return None
