"""``llm``: one chat completion from any OpenAI-compatible endpoint; output its text, or the
JSON it returned, validated against ``json_schema`` (with one repair attempt).

The request goes through the ``http`` block's guarded client (``flowforge.blocks.http_client``):
on a server, a ``base_url`` on a private, loopback or metadata address is refused like an
``http`` block's URL (``ForbiddenAddress``), unless the worker's configuration allows it. The
API key is sent as ``Authorization: Bearer …`` and never logged; it is scrubbed from the
server's error messages before they become the block's.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from pydantic import AfterValidator, Field, model_validator

from flowforge.definition.block import Block
from flowforge.definition.fields import Duration, JsonSchema, Templated, is_template_text
from flowforge.errors import BlockError, NonRetryableError, RetryLater

DEFAULT_REQUEST_TIMEOUT = 120.0
MAX_REPLY_BYTES = 16 * 1024 * 1024
MAX_RETRY_AFTER = 3600.0
_RETRYABLE_STATUS = frozenset({408, 409, 429})
_QUOTE = 500
"""Characters of a server message or an invalid reply quoted in an error."""


ROLES = ("system", "developer", "user", "assistant")


def _check_messages(value: Any) -> Any:
    """Each message is ``{role, content}`` with a known role (templates allowed in both)."""
    if not isinstance(value, list):
        return value
    if not value:
        raise ValueError("give at least one message")
    for index, message in enumerate(value):
        if set(message) != {"role", "content"}:
            raise ValueError(f"message {index}: give exactly 'role' and 'content'")
        role = message["role"]
        if not is_template_text(role) and role not in ROLES:
            raise ValueError(f"message {index}: role {role!r} is not one of {', '.join(ROLES)}")
    return value


Messages = Annotated[list[dict[str, str]], AfterValidator(_check_messages)]


class LlmBlock(Block):
    """Ask an OpenAI-compatible chat-completions endpoint; output the reply's text, or its JSON
    validated against ``json_schema``. Token usage is kept with the attempt (``usage``)."""

    type_name: ClassVar[str] = "llm"
    raw_fields: ClassVar[frozenset[str]] = frozenset({"json_schema", "strict"})

    base_url: str
    model: str
    api_key: str | None = None
    prompt: str | None = None
    messages: Templated[Messages] | None = None
    system: str | None = None
    temperature: Templated[Annotated[float, Field(ge=0, le=2)]] | None = None
    max_tokens: Templated[Annotated[int, Field(ge=1)]] | None = None
    json_schema: JsonSchema | None = None
    strict: bool = False
    request_timeout: Templated[Annotated[Duration, Field(gt=0)]] = DEFAULT_REQUEST_TIMEOUT

    @model_validator(mode="after")
    def _prompt_or_messages(self) -> LlmBlock:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of 'prompt' or 'messages'")
        return self

    async def run(self, ctx: Any) -> Any:
        import httpx

        from flowforge.blocks.http_client import describe_url, guarded_client

        url = self._endpoint()
        try:
            where = f"POST {describe_url(url)}"
        except httpx.InvalidURL as exc:
            raise NonRetryableError(
                f"base_url is not a valid URL: {exc}", error_type="InvalidInput"
            ) from None
        conversation = self._conversation()
        usage = _Usage()
        try:
            async with guarded_client(ctx.policy, self.request_timeout) as client:
                call = _Call(self, client, url, where, ctx, usage)
                reply = await call.complete(conversation)
                if self.json_schema is None:
                    result: Any = reply
                else:
                    result = await self._structured(call, conversation, reply)
        finally:
            # kept whether the attempt succeeds or not: a failed attempt spent tokens too
            if usage.requests:
                ctx.logger.info("token usage: %s", usage.describe())
            ctx.annotate("usage", usage.as_dict())
        return result

    def _endpoint(self) -> str:
        base = self.base_url.strip()
        if not base.startswith(("http://", "https://")):
            raise NonRetryableError(
                f"base_url {base!r} is not an http:// or https:// URL "
                "(e.g. https://api.openai.com/v1)",
                error_type="InvalidInput",
            )
        try:
            parts = urlsplit(base)
        except ValueError as exc:
            raise NonRetryableError(
                f"base_url is not a valid URL: {exc}", error_type="InvalidInput"
            ) from None
        return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/chat/completions"))

    def _conversation(self) -> list[dict[str, str]]:
        messages: list[dict[str, str]] = []
        if self.system is not None:
            messages.append({"role": "system", "content": self.system})
        if self.messages is not None:
            messages.extend(dict(m) for m in self.messages)
        else:
            assert self.prompt is not None
            messages.append({"role": "user", "content": self.prompt})
        return messages

    async def _structured(self, call: _Call, conversation: list[dict[str, str]], reply: str) -> Any:
        assert self.json_schema is not None
        value, problem = _check(reply, self.json_schema)
        if problem is None:
            return value
        call.ctx.logger.warning(
            "the reply is not valid (%s): asking the model to repair it", problem
        )
        schema_text = json.dumps(self.json_schema, separators=(",", ":"))
        repair = [
            *conversation,
            {"role": "assistant", "content": reply},
            {
                "role": "user",
                "content": f"Your reply is not valid: {problem}. Reply again with only the "
                "corrected JSON value (no explanation, no code fence); it must validate "
                f"against this JSON Schema: {schema_text}",
            },
        ]
        second = await call.complete(repair)
        value, problem = _check(second, self.json_schema)
        if problem is None:
            call.ctx.logger.info("the repaired reply is valid")
            return value
        raise NonRetryableError(
            f"the model's reply is still invalid after one repair attempt: {problem}; "
            f"the reply was: {_quote(second)}",
            error_type="InvalidLlmOutput",
        )


class _Usage:
    """Token counts summed over the attempt's requests (the repair request included)."""

    def __init__(self) -> None:
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.total_tokens = 0
        self.requests = 0

    def add(self, reported: Any) -> None:
        self.requests += 1
        if not isinstance(reported, dict):
            return
        prompt = _count(reported.get("prompt_tokens"))
        completion = _count(reported.get("completion_tokens"))
        total = _count(reported.get("total_tokens")) or prompt + completion
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        self.total_tokens += total

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "requests": self.requests,
        }

    def describe(self) -> str:
        return (
            f"{self.prompt_tokens} prompt + {self.completion_tokens} completion = "
            f"{self.total_tokens} tokens in {self.requests} request(s)"
        )


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


class _Call:
    """Sends chat-completion requests of one attempt and turns answers into text or errors."""

    def __init__(
        self, block: LlmBlock, client: Any, url: str, where: str, ctx: Any, usage: _Usage
    ) -> None:
        self.block = block
        self.client = client
        self.url = url
        self.where = where
        self.ctx = ctx
        self.usage = usage

    def _body(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        block = self.block
        body: dict[str, Any] = {"model": block.model, "messages": messages}
        if block.temperature is not None:
            body["temperature"] = block.temperature
        if block.max_tokens is not None:
            body["max_tokens"] = block.max_tokens
        if block.json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": block.id,
                    "schema": block.json_schema,
                    "strict": block.strict,
                },
            }
        return body

    async def complete(self, messages: list[dict[str, str]]) -> str:
        """The reply's text. Raises the block's errors (see the docs' table)."""
        import httpx

        headers = {"Accept": "application/json"}
        if self.block.api_key:
            headers["Authorization"] = f"Bearer {self.block.api_key}"
        self.ctx.logger.info(
            "%s: model %s, %d message(s)", self.where, self.block.model, len(messages)
        )
        timeout = self.block.request_timeout
        try:
            async with asyncio.timeout(timeout):
                request = self.client.build_request(
                    "POST", self.url, json=self._body(messages), headers=headers
                )
                response = await self.client.send(request, stream=True)
                try:
                    content = await _read(response)
                finally:
                    await response.aclose()
        except (TimeoutError, httpx.TimeoutException):
            raise BlockError(
                f"{self.where}: no complete response within {timeout:g}s (request_timeout)",
                error_type="LlmTimeout",
            ) from None
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise NonRetryableError(
                f"{self.where}: invalid base_url: {self._scrub(str(exc))}",
                error_type="InvalidInput",
            ) from None
        except httpx.TransportError as exc:
            detail = self._scrub(str(exc)) or "connection failed"
            raise BlockError(
                f"{self.where}: {type(exc).__name__}: {detail}", error_type="LlmConnectionError"
            ) from None
        except BlockError as exc:
            if exc.error_type != "ConnectionError":  # ForbiddenAddress: as the guard says
                raise
            raise BlockError(
                f"{self.where}: {exc.message}", error_type="LlmConnectionError"
            ) from None
        self.ctx.logger.info("%s -> %d", self.where, response.status_code)
        if response.status_code != 200:
            raise self._http_error(response, content)
        return self._reply_text(content)

    def _http_error(self, response: Any, content: bytes) -> BlockError:
        status = response.status_code
        said = self._scrub(_server_message(content))
        message = f"{self.where} answered {status}: {said}"
        if status in (401, 403):
            return NonRetryableError(
                f"{message} (check api_key and that it may use model {self.block.model!r})",
                error_type="LlmAuthError",
            )
        if status in _RETRYABLE_STATUS or status >= 500:
            error_type = "LlmRateLimited" if status == 429 else "LlmServerError"
            delay = _retry_after(response.headers.get("retry-after"))
            if delay is None:
                return BlockError(message, error_type=error_type)
            later = RetryLater(f"{message} (Retry-After: {delay:g}s)", delay=delay)
            later.error_type = error_type
            return later
        if 300 <= status < 400:
            target = response.headers.get("location", "?")
            return NonRetryableError(
                f"{message}: redirected to {target!r}; check base_url", error_type="LlmError"
            )
        return NonRetryableError(message, error_type="LlmError")

    def _reply_text(self, content: bytes) -> str:
        try:
            answer = json.loads(content)
            choice = answer["choices"][0]
            message = choice["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise NonRetryableError(
                f"{self.where}: the answer is not a chat completion: {_quote(_decode(content))}",
                error_type="LlmError",
            ) from None
        self.usage.add(answer.get("usage"))
        text = message.get("content") if isinstance(message, dict) else None
        if isinstance(text, list):  # content parts
            text = "".join(p.get("text", "") for p in text if isinstance(p, dict))
        if not isinstance(text, str):
            refusal = message.get("refusal") if isinstance(message, dict) else None
            why = f"the model refused: {refusal}" if refusal else "the reply has no text"
            raise NonRetryableError(
                f"{self.where}: {why} (finish_reason: {choice.get('finish_reason')})",
                error_type="LlmError",
            )
        return text

    def _scrub(self, text: str) -> str:
        key = self.block.api_key
        return text.replace(key, "***") if key and len(key) >= 3 else text


async def _read(response: Any) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_REPLY_BYTES:
            raise NonRetryableError(
                f"the answer is larger than {MAX_REPLY_BYTES} bytes", error_type="LlmError"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _decode(content: bytes) -> str:
    return content.decode("utf-8", errors="replace")


def _quote(text: str) -> str:
    text = text.strip()
    return repr(text if len(text) <= _QUOTE else text[:_QUOTE] + "…")


def _server_message(content: bytes) -> str:
    """The server's own words: OpenAI's ``{"error": {"message": …}}``, else the body."""
    try:
        answer = json.loads(content)
    except ValueError:
        return _quote(_decode(content)) if content.strip() else "(no body)"
    if isinstance(answer, dict):
        error = answer.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return _quote(error["message"])
        if isinstance(error, str):
            return _quote(error)
        if isinstance(answer.get("message"), str):
            return _quote(answer["message"])
    return _quote(_decode(content))


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds, or an HTTP date)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _check(reply: str, schema: dict[str, Any]) -> tuple[Any, str | None]:
    """(the parsed value, None) when ``reply`` is JSON valid against ``schema``, else
    (None, what is wrong)."""
    from jsonschema import exceptions, validators

    text = _unfenced(reply)
    try:
        value = json.loads(text)
    except ValueError as error:
        return None, f"it is not valid JSON ({error})"
    validator = validators.validator_for(schema)(schema)
    problem = exceptions.best_match(validator.iter_errors(value))
    if problem is None:
        return value, None
    path = "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in problem.absolute_path)
    return None, f"it does not match the JSON Schema at ${path}: {problem.message}"


def _unfenced(reply: str) -> str:
    """The reply without a Markdown code fence around it (```json … ```), which models add."""
    text = reply.strip()
    if text.startswith("```") and text.endswith("```") and "\n" in text:
        return text[text.index("\n") + 1 : -3].strip()
    return text
