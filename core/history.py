"""History policy: which earlier turns of a chat go into the model input, within a budget."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from core.engine import PromptTurn
from core.images import load_prepared
from storage.store import StoredTurn

TokenCost = Callable[[str, Sequence[tuple[int, int]]], int]


@dataclass(frozen=True)
class HistoryBudget:
    max_turns: int  # earlier question/answer exchanges kept, besides the current question
    max_tokens: int
    describe_prompt: str
    system_prompt: str = ""


def _exchanges(turns: Sequence[StoredTurn]) -> list[list[StoredTurn]]:
    """Group turns into exchanges, each starting at a user turn."""
    groups: list[list[StoredTurn]] = []
    for turn in turns:
        if turn.role == "user" or not groups:
            groups.append([turn])
        else:
            groups[-1].append(turn)
    return groups


def turn_text(turn: StoredTurn, describe_prompt: str) -> str:
    # A photo sent without words is a request to describe it; store nothing, prompt with this.
    if turn.role == "user" and not turn.text.strip() and turn.images:
        return describe_prompt
    return turn.text


def _cost(turn: StoredTurn, budget: HistoryBudget, token_cost: TokenCost) -> int:
    sizes = [(im.width, im.height) for im in turn.images]
    return token_cost(turn_text(turn, budget.describe_prompt), sizes)


def select_turns(
    turns: Sequence[StoredTurn], budget: HistoryBudget, token_cost: TokenCost
) -> list[StoredTurn]:
    """Keep the latest exchanges that fit; the last exchange (the current question) always stays."""
    groups = _exchanges(turns)
    if not groups:
        return []
    current, earlier = groups[-1], groups[:-1]
    used = sum(_cost(t, budget, token_cost) for t in current)
    if budget.system_prompt:
        used += token_cost(budget.system_prompt, [])
    kept: list[list[StoredTurn]] = []
    for group in reversed(earlier[-budget.max_turns :] if budget.max_turns else []):
        cost = sum(_cost(t, budget, token_cost) for t in group)
        if used + cost > budget.max_tokens:
            break  # dropping oldest first: once one does not fit, nothing older is kept
        used += cost
        kept.append(group)
    return [t for group in reversed(kept) for t in group] + current


def build_prompt(
    turns: Sequence[StoredTurn],
    budget: HistoryBudget,
    token_cost: TokenCost,
) -> list[PromptTurn]:
    """The model input for the latest user turn of a chat, earlier images included."""
    prompt: list[PromptTurn] = []
    if budget.system_prompt:
        prompt.append(PromptTurn(role="system", text=budget.system_prompt))
    for turn in select_turns(turns, budget, token_cost):
        images = tuple(load_prepared(im.data) for im in turn.images)
        prompt.append(
            PromptTurn(role=turn.role, text=turn_text(turn, budget.describe_prompt), images=images)
        )
    return prompt
