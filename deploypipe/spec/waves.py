"""The order of a multi-service release: waves of services, each wave after the services it depends on.

Declared in the pipeline: ``render.release``'s ``waves`` (a list of lists, in order), or each service target's
``depends_on`` (wave N holds the services whose dependencies are all in earlier waves: the longest dependency
chain decides the number of waves). Without either, every service is one wave.
"""

from __future__ import annotations

from typing import Mapping, Sequence

__all__ = ["layered", "plan_waves"]


def plan_waves(services: Sequence[str], depends_on: Mapping[str, Sequence[str]],
               explicit: Sequence[Sequence[str]] | None = None) -> list[list[str]]:
    """Waves of ``services`` (ValueError naming the problem: a cycle, a service twice, a dependency left out)."""
    if explicit:
        seen: list[str] = [s for wave in explicit for s in wave]
        twice = sorted({s for s in seen if seen.count(s) > 1})
        if twice:
            raise ValueError(f"service '{twice[0]}' is in more than one wave")
        for index, wave in enumerate(explicit):
            earlier = {s for w in explicit[:index] for s in w}
            for service in wave:
                late = [d for d in depends_on.get(service, ()) if d in seen and d not in earlier]
                if late:
                    raise ValueError(f"service '{service}' (wave {index + 1}) depends on '{late[0]}', which is not "
                                     f"in an earlier wave")
        return [list(wave) for wave in explicit if wave]
    waves, left = layered(services, depends_on)
    if left:
        raise ValueError(f"depends_on makes a cycle between {', '.join(sorted(left))}")
    return waves


def layered(services: Sequence[str], depends_on: Mapping[str, Sequence[str]]) -> tuple[list[list[str]], list[str]]:
    """(the waves of ``services`` whose dependencies among them are all placed, the services left: each is on or
    behind a cycle); a dependency outside ``services`` orders nothing."""
    chosen = list(dict.fromkeys(services))
    waves: list[list[str]] = []
    placed: set[str] = set()
    while ready := [s for s in chosen if s not in placed
                    and all(d in placed or d not in chosen for d in depends_on.get(s, ()))]:
        waves.append(ready)
        placed.update(ready)
    return waves, [s for s in chosen if s not in placed]
