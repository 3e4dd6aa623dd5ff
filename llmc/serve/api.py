"""The OpenAI-compatible HTTP API on aiohttp: /health, /v1/models, /v1/chat/completions, /v1/completions
(plain JSON or server-sent events) and the chat page at /.

The model loads in a thread after the server listens (/health answers 503 until then). Every handler
error becomes an OpenAI-style JSON error: 4xx for the client's mistakes, 404 for unknown paths, 500 (and
a log line) for ours; the server keeps serving.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
import uuid
from dataclasses import dataclass

from aiohttp import web

from llmc.ir.errors import LlmcError
from llmc.runtime.chat_template import ChatTemplateError

from . import requests as rq
from .scheduler import Request, Scheduler

log = logging.getLogger("llmc.serve")
PAGE = os.path.join(os.path.dirname(__file__), "chat.html")


@dataclass
class State:
    name: str                     # the model id clients see: the GGUF file's name
    model: object | None = None   # runtime.model.Model once loaded
    scheduler: Scheduler | None = None


def _json_error(err: rq.ApiError) -> web.Response:
    return web.json_response(err.body(), status=err.status)


@web.middleware
async def errors(request: web.Request, handler):
    try:
        return await handler(request)
    except rq.ApiError as err:
        return _json_error(err)
    except web.HTTPException as exc:      # unknown path (404), wrong method (405), ...
        if exc.status < 400:
            raise
        kind = "not_found_error" if exc.status == 404 else "invalid_request_error"
        return _json_error(rq.ApiError(exc.status, f"{exc.reason}: {request.method} {request.path}", kind))
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as exc:
        log.exception("internal error on %s %s", request.method, request.path)
        return _json_error(rq.ApiError(500, f"internal server error: {type(exc).__name__}: {exc}", "server_error"))


def _loaded(request: web.Request) -> State:
    state: State = request.app["state"]
    if state.scheduler is None:
        raise rq.ApiError(503, "Loading model", "unavailable_error")
    return state


async def _body(request: web.Request) -> dict:
    try:
        body = await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise rq.bad(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise rq.bad("the request body must be a JSON object")
    return body


# ---- endpoints -----------------------------------------------------------------------------------------
async def health(request: web.Request) -> web.Response:
    _loaded(request)
    return web.json_response({"status": "ok"})


async def models(request: web.Request) -> web.Response:
    state = _loaded(request)
    m = state.model
    return web.json_response({"object": "list", "data": [{
        "id": state.name, "object": "model", "created": int(time.time()), "owned_by": "llmc",
        "meta": {"n_ctx": m.n_ctx, "n_vocab": m.n_vocab, "n_slots": state.scheduler.engine.n_seq,
                 "target": m.target}}]})


async def slots(request: web.Request) -> web.Response:
    """Each slot: busy or idle, how many requests it has served and how many tokens its KV cache holds."""
    state = _loaded(request)
    return web.json_response([{"id": s.index, "busy": s.request is not None, "uses": s.uses,
                               "n_cached": len(s.cached)} for s in state.scheduler.slots])


def _render(state: State, messages: list[dict]) -> str:
    if state.model.chat_template is None:
        raise rq.bad("this model's GGUF file has no chat template (tokenizer.chat_template); start the server "
                     "with --chat-template NAME_OR_FILE, or use /v1/completions")
    try:
        return state.model.chat_template.render(messages)
    except ChatTemplateError as exc:
        raise rq.bad(str(exc)) from None


async def chat_completions(request: web.Request) -> web.StreamResponse:
    state = _loaded(request)
    body = await _body(request)
    messages = rq.messages(body)
    gen = rq.generation(body)
    prompt = state.model.tokenize(_render(state, messages))
    return await _generate(request, state, prompt, gen, chat=True)


async def apply_template(request: web.Request) -> web.Response:
    """The prompt text a chat request's messages become (as llama-server's /apply-template)."""
    state = _loaded(request)
    return web.json_response({"prompt": _render(state, rq.messages(await _body(request)))})


async def completions(request: web.Request) -> web.StreamResponse:
    state = _loaded(request)
    body = await _body(request)
    prompt = rq.prompt(body, state.model.n_vocab)
    gen = rq.generation(body)
    ids = state.model.tokenize(prompt) if isinstance(prompt, str) else prompt
    return await _generate(request, state, ids, gen, chat=False)


async def page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(PAGE, headers={"Content-Type": "text/html; charset=utf-8"})


# ---- generation ----------------------------------------------------------------------------------------
async def _generate(request: web.Request, state: State, prompt: list[int], gen: rq.Generation, chat: bool):
    n_ctx = state.model.n_ctx
    if not prompt:
        raise rq.bad("the prompt is empty (it has no tokens)")
    if len(prompt) >= n_ctx:
        raise rq.ApiError(400, f"the prompt has {len(prompt)} tokens; the context holds {n_ctx} (-c) and needs "
                               "room for the reply", "exceed_context_size_error")
    job = Request(prompt, gen.max_tokens or n_ctx, gen.sampler(), gen.stop, asyncio.get_running_loop(),
                  ignore_eos=gen.ignore_eos)
    reply = _Reply(state.name, chat)
    state.scheduler.submit(job)
    done = False
    try:
        if gen.stream:
            response = await _stream(request, job, reply, gen.include_usage)
        else:
            text, reason = [], None
            while reason is None:
                kind, value = await job.events.get()
                if kind == "text":
                    text.append(value)
                elif kind == "error":
                    raise RuntimeError(value)
                else:
                    reason = value
            response = web.json_response(reply.whole("".join(text), reason, _usage(job)))
        done = True
        return response
    finally:
        if not done:                     # the client went away (or a step failed): free the slot now
            state.scheduler.cancel(job)


async def _stream(request: web.Request, job: Request, reply: "_Reply", include_usage: bool):
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)

    async def send(obj) -> None:
        await response.write(f"data: {json.dumps(obj, ensure_ascii=False)}\n\n".encode())

    if reply.chat:
        await send(reply.chunk({"role": "assistant", "content": ""}, None))
    while True:
        kind, value = await job.events.get()
        if kind == "text":
            await send(reply.chunk(value, None))
        elif kind == "error":
            log.error("generation failed: %s", value)
            await send(rq.ApiError(500, value, "server_error").body())
            break
        else:
            await send(reply.chunk({} if reply.chat else "", value))
            if include_usage:
                await send({**reply.chunk({}, None), "choices": [], "usage": _usage(job)})
            break
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


def _usage(job: Request) -> dict:
    return {"prompt_tokens": len(job.prompt), "completion_tokens": job.n_generated,
            "total_tokens": len(job.prompt) + job.n_generated,
            "prompt_tokens_details": {"cached_tokens": job.n_cached}}


class _Reply:
    """The OpenAI response objects of one request (chat.completion or text_completion, and their chunks)."""

    def __init__(self, model: str, chat: bool):
        self.model, self.chat = model, chat
        self.id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())

    def _head(self, obj: str) -> dict:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model}

    def whole(self, text: str, reason: str, usage: dict) -> dict:
        if self.chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": reason}
            return {**self._head("chat.completion"), "choices": [choice], "usage": usage}
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": reason}
        return {**self._head("text_completion"), "choices": [choice], "usage": usage}

    def chunk(self, delta, reason: str | None) -> dict:
        """delta: text, or for chat a message delta ({"role": ...} / {} at the end)."""
        if self.chat:
            delta = {"content": delta} if isinstance(delta, str) else delta
            choice = {"index": 0, "delta": delta, "finish_reason": reason}
            return {**self._head("chat.completion.chunk"), "choices": [choice]}
        choice = {"index": 0, "text": delta, "logprobs": None, "finish_reason": reason}
        return {**self._head("text_completion"), "choices": [choice]}


# ---- the application -----------------------------------------------------------------------------------
def make_app(state: State) -> web.Application:
    app = web.Application(middlewares=[errors], client_max_size=16 * 2**20)
    app["state"] = state
    app.router.add_get("/", page)
    app.router.add_get("/health", health)
    app.router.add_get("/slots", slots)
    app.router.add_post("/apply-template", apply_template)
    for prefix in ("/v1", ""):                     # llama-server answers both spellings
        app.router.add_get(f"{prefix}/models", models)
        app.router.add_post(f"{prefix}/chat/completions", chat_completions)
        app.router.add_post(f"{prefix}/completions", completions)
    return app


async def serve(load, name: str, host: str, port: int, ready=None) -> None:
    """Listen on host:port at once, then load (a function returning a Model, run in a thread) and serve
    until SIGINT (Ctrl-C) or SIGTERM. ready(host, port) is called once the model serves."""
    state = State(name)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    runner = web.AppRunner(make_app(state), handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise LlmcError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    log.info("listening on http://%s:%d (loading the model)", host, port)
    try:
        loading = loop.run_in_executor(None, load)
        await asyncio.wait([loading, asyncio.ensure_future(stopping.wait())], return_when=asyncio.FIRST_COMPLETED)
        if stopping.is_set():
            log.info("stopped while loading")
            return
        model = loading.result()
        if not hasattr(model.engine, "forward_batch"):
            raise LlmcError(f"llmc serve needs a compiled target (an artifact or --target c); "
                            f"{model.target!r} has no batched forward")
        state.model = model
        state.scheduler = Scheduler(model.engine, model.tokenizer)
        if ready:
            ready(host, port)
        await stopping.wait()
        log.info("shutting down")
    finally:
        if state.scheduler is not None:
            state.scheduler.stop()
        await runner.cleanup()
