"""The conversation service: the one object every adapter talks to."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, replace

from core.commands import command_reply
from core.config import Settings
from core.engine import Engine, GenerationParams, PromptTurn
from core.history import HistoryBudget, build_prompt
from core.images import ImageError, ImageLimits, prepare_image
from core.messages import (
    Answer,
    AnswerEvent,
    ChatRef,
    Completion,
    CompletionEvent,
    Delta,
    Duplicate,
    Incoming,
    Pending,
    Queued,
    Started,
)
from core.queue import InferenceQueue
from storage.store import ConversationStore, StoredImage, StoredTurn

log = logging.getLogger(__name__)


class UserInputError(ValueError):
    """The user's message cannot be handled as sent; the message is fit to show to the user."""


@dataclass(frozen=True)
class GivenMessage:
    """One message of a conversation that the caller keeps itself (stateless APIs)."""

    role: str  # "system", "user" or "assistant"
    text: str
    images: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class Receipt:
    """A stored user turn, ready to be answered."""

    turn_id: int
    chat: ChatRef


class ConversationService:
    """Stores turns, builds the model input from history, runs the engine behind the queue."""

    def __init__(self, settings: Settings, store: ConversationStore, engine: Engine) -> None:
        self.settings = settings
        self.store = store
        self.engine = engine
        self.queue = InferenceQueue(settings.queue.max_waiting)
        self._limits = ImageLimits(
            max_pixels=settings.images.max_pixels,
            max_file_bytes=settings.images.max_file_bytes,
            max_decoded_pixels=settings.images.max_decoded_pixels,
        )
        self._budget = HistoryBudget(
            max_turns=settings.history.max_turns,
            max_tokens=settings.history.max_tokens,
            describe_prompt=settings.history.describe_prompt,
            system_prompt=settings.model.system_prompt,
        )
        model = settings.model
        self.default_params = GenerationParams(
            max_new_tokens=model.max_new_tokens,
            temperature=model.temperature,
            top_p=model.top_p,
            do_sample=model.do_sample,
            seed=model.seed,
        )

    # -- taking messages in -------------------------------------------------------------------

    def check(self, message: Incoming) -> list[StoredImage]:
        """Validate a message; return its images as they will be stored. Raises user errors."""
        if len(message.text) > self.settings.history.max_text_chars:
            raise UserInputError(
                f"That message is too long ({len(message.text)} characters); please keep it under "
                f"{self.settings.history.max_text_chars}."
            )
        if not message.text.strip() and not message.images:
            raise UserInputError("Send me a photo, or ask a question about one.")
        if len(message.images) > self.settings.images.max_images_per_message:
            raise UserInputError(
                f"That is {len(message.images)} images; I can look at up to "
                f"{self.settings.images.max_images_per_message} at once."
            )
        prepared = []
        for number, data in enumerate(message.images, start=1):
            try:
                image = prepare_image(data, self._limits)
            except ImageError as error:
                prefix = f"Image {number}: " if len(message.images) > 1 else ""
                raise ImageError(prefix + str(error)) from None
            prepared.append(StoredImage(image.data, image.width, image.height))
        return prepared

    async def receive(self, message: Incoming) -> Receipt | Duplicate:
        """Check and durably store a user's message. Call before telling the platform it arrived."""
        images = await asyncio.to_thread(self.check, message)
        chat = message.chat
        turn_id = await asyncio.to_thread(
            self.store.add_user_turn,
            key=chat.key,
            platform=chat.platform,
            chat_id=chat.chat_id,
            thread_id=chat.thread_id,
            user_id=message.user_id,
            text=message.text,
            images=images,
            event_id=message.event_id,
            reply_to=message.reply_to,
        )
        if turn_id is None:
            log.info("[%s] duplicate delivery %s ignored", chat.key, message.event_id)
            return Duplicate(message.event_id or "")
        log.info("[%s] stored turn %d (%d images)", chat.key, turn_id, len(images))
        return Receipt(turn_id=turn_id, chat=chat)

    async def claim_event(self, event_id: str) -> bool:
        """Record a delivery that is not a turn (a command, a refusal); False if seen before."""
        return await asyncio.to_thread(self.store.claim_event, event_id)

    # -- answering ----------------------------------------------------------------------------

    async def prompt_for(self, receipt: Receipt) -> list[PromptTurn]:
        def build() -> list[PromptTurn]:
            turns = [t for t in self.store.history(receipt.chat.key) if t.id <= receipt.turn_id]
            return build_prompt(turns, self._budget, self.engine.token_cost)

        return await asyncio.to_thread(build)

    async def answer(
        self, receipt: Receipt, params: GenerationParams | None = None
    ) -> AsyncIterator[AnswerEvent]:
        """Generate, stream and store the answer to a stored turn.

        Raises ``QueueFull`` before anything is yielded when too many requests are waiting.
        """
        prompt = await self.prompt_for(receipt)
        key = receipt.chat.key
        text = ""
        async for event in self._generate(prompt, params, cache_key=key):
            if isinstance(event, Delta):
                text = event.text
            yield event
        text = text.strip()
        answer_id = await asyncio.to_thread(self.store.add_answer, receipt.turn_id, text)
        log.info(
            "[%s] answered turn %d with turn %d (%d chars)",
            key,
            receipt.turn_id,
            answer_id,
            len(text),
        )
        yield Answer(turn_id=receipt.turn_id, text=text)

    async def _generate(
        self, prompt: list[PromptTurn], params: GenerationParams | None, cache_key: str | None
    ) -> AsyncIterator[Queued | Started | Delta]:
        """Run the engine behind the queue, turning its text pieces into growing deltas."""
        chosen = params or self.default_params

        def work(stop: threading.Event) -> Iterator[str]:
            return self.engine.stream(prompt, chosen, cache_key=cache_key, should_stop=stop)

        text = ""
        async for event in self.queue.run(work):
            if isinstance(event, Queued | Started):
                yield event
                continue
            text += event
            yield Delta(chunk=event, text=text)

    async def ask(self, message: Incoming) -> AsyncIterator[AnswerEvent]:
        """Receive and answer in one go (for callers that need no acknowledgement in between)."""
        receipt = await self.receive(message)
        if isinstance(receipt, Duplicate):
            yield receipt
            return
        async for event in self.answer(receipt):
            yield event

    # -- conversations kept by the caller ------------------------------------------------------

    def _given_prompt(self, messages: Sequence[GivenMessage]) -> list[PromptTurn]:
        system = [m.text for m in messages if m.role == "system" and m.text.strip()]
        rest = [m for m in messages if m.role != "system"]
        if not rest or rest[-1].role != "user":
            raise UserInputError("The last message must be the user's question.")
        turns = []
        for number, message in enumerate(rest, start=1):
            if message.role not in ("user", "assistant"):
                raise UserInputError(f"Message {number} has the unsupported role '{message.role}'.")
            images: list[StoredImage] = []
            if message.role == "user":
                probe = Incoming(ChatRef("given", "-"), "-", message.text, message.images)
                images = self.check(probe)
            turns.append(StoredTurn(number, message.role, message.text, tuple(images)))
        # The operator's system prompt stays first; the caller's own instructions follow it.
        system_prompt = "\n\n".join([self._budget.system_prompt, *system]).strip()
        budget = replace(self._budget, system_prompt=system_prompt)
        return build_prompt(turns, budget, self.engine.token_cost)

    async def complete(
        self,
        messages: Sequence[GivenMessage],
        params: GenerationParams | None = None,
        *,
        label: str = "given",
    ) -> AsyncIterator[CompletionEvent]:
        """Answer a conversation given in full, through the same queue and engine; store nothing.

        Applies the same checks and history budget as stored chats. Raises ``UserInputError`` /
        ``ImageError`` for unusable input and ``QueueFull`` before anything is yielded.
        """
        prompt = await asyncio.to_thread(self._given_prompt, messages)
        limit = (params or self.default_params).max_new_tokens
        text = ""
        async for event in self._generate(prompt, params, cache_key=None):
            if isinstance(event, Delta):
                text = event.text
            yield event
        text = text.strip()

        def usage() -> tuple[int, int]:
            cost = self.engine.token_cost
            prompt_tokens = sum(cost(t.text, [im.size for im in t.images]) for t in prompt)
            # The answer's own tokens: its cost as a message minus an empty message's overhead.
            # Re-tokenizing can count more than were generated when the model emitted broken
            # UTF-8 (replacement characters), but never more than the generation limit.
            answer_tokens = max(0, cost(text, []) - cost("", []))
            return prompt_tokens, min(answer_tokens, limit)

        prompt_tokens, completion_tokens = await asyncio.to_thread(usage)
        log.info("[%s] answered a given conversation (%d chars)", label, len(text))
        yield Completion(text, prompt_tokens, completion_tokens)

    # -- reading a conversation back ----------------------------------------------------------

    async def has_chat(self, chat: ChatRef) -> bool:
        """Whether any message was ever stored for this chat."""
        return await asyncio.to_thread(self.store.chat_exists, chat.key)

    async def transcript(self, chat: ChatRef) -> list[StoredTurn]:
        """The chat's current conversation (since the last reset), images included."""
        return await asyncio.to_thread(self.store.history, chat.key)

    async def delivered(self, turn_id: int) -> None:
        """The adapter has sent the answer to the platform; it will not be re-sent on restart."""
        await asyncio.to_thread(self.store.mark_delivered, turn_id)

    # -- commands and recovery ----------------------------------------------------------------

    async def command(self, chat: ChatRef, name: str) -> str:
        """Run a command (start, help, reset, or unknown) and return the reply text."""
        text, resets = command_reply(name)
        if resets:
            await asyncio.to_thread(self.store.reset, chat.key)
            log.info("[%s] conversation reset", chat.key)
        return text

    async def reset(self, chat: ChatRef) -> None:
        await asyncio.to_thread(self.store.reset, chat.key)

    async def undelivered(self, platform: str) -> list[Pending]:
        """Turns of ``platform`` received but never answered or never delivered (after a crash)."""
        rows = await asyncio.to_thread(self.store.undelivered, platform)
        return [
            Pending(
                turn_id=r.turn_id,
                chat=ChatRef(r.platform, r.chat_id, r.thread_id),
                reply_to=r.reply_to,
                answer=r.answer,
            )
            for r in rows
        ]

    async def resume(self, pending: Pending) -> AsyncIterator[AnswerEvent]:
        """Finish a turn found by ``undelivered``: generate its answer unless it already exists."""
        if pending.answer is not None:
            yield Answer(turn_id=pending.turn_id, text=pending.answer)
            return
        async for event in self.answer(Receipt(turn_id=pending.turn_id, chat=pending.chat)):
            yield event
