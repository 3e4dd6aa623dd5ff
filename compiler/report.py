"""What a compile did, for people: the summary every `llmc compile` prints, `llmc explain`'s per-node
table, and graph.html, the partitioned graph drawn in one lane per device.

Everything here reads the manifest (a dict), so `llmc explain` needs nothing but the artifact.
"""

from __future__ import annotations

import html
from collections import Counter, defaultdict

from .fit_memory import fmt_bytes

PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1"]
QUIET = {"weight", "reshape", "loop_in"}  # not drawn as rows of their own / not counted as work


def placement_facts(manifest: dict) -> dict:
    """Counts the summary and the picture share: nodes per device, fallbacks, decompositions, splits."""
    ops = [o for o in manifest["ops"] if o["op"] not in QUIET]
    per_device = Counter(o["device"] for o in ops if o["op"] != "transfer")
    fallbacks = [o for o in ops if o.get("fallback")]
    decomposed = defaultdict(list)
    for o in ops:
        if o.get("decomposed_from"):
            decomposed[o["decomposed_from"]].append(o)
    transfers = [o for o in ops if o["op"] == "transfer"]
    splits, last = 0, None
    for o in ops:
        if o["op"] == "transfer":
            continue
        if o["device"] != last:
            splits, last = splits + 1, o["device"]
    return {
        "per_device": per_device,
        "fallbacks": fallbacks,
        "decomposed": decomposed,
        "transfers": transfers,
        "splits": splits,
    }


def summary(manifest: dict) -> str:
    f = placement_facts(manifest)
    target = manifest["device_profile"]
    lines = [f"{manifest['arch']} on {target} ({manifest['devices'][target]['description']})"]
    stand_in = manifest.get("codegen", {}).get("stand_in")
    if manifest["devices"][target]["codegen"] != "c":
        if stand_in:
            lines[0] += f"; generated C stands in for {manifest['devices'][target]['codegen']}: {stand_in}"
        else:
            kernels = manifest.get("accelerators", {}).get(target, {}).get("kernels", {})
            lines[0] += (f"; {manifest['devices'][target]['codegen']} code generated"
                         + (f" ({len(kernels)} kernels)" if kernels else ""))
    lines.append(
        "  nodes: "
        + ", ".join(f"{d} {n}" for d, n in f["per_device"].most_common())
        + f"  | splits {f['splits']} (layer body counted once), transfers {len(f['transfers'])}"
    )
    for why, nodes in f["decomposed"].items():
        made = ", ".join(dict.fromkeys(o["op"] for o in nodes))
        lines.append(f"  decomposed -> {made} ({len(nodes)} nodes): {why}")
    by_reason = defaultdict(list)
    for o in f["fallbacks"]:
        by_reason[(o["device"], o["op"], o["fallback"])].append(o)
    for (device, op, why), nodes in by_reason.items():
        lines.append(f"  fallback {op} -> {device} ({_some_nodes(nodes)}): {why}")
    waiting = defaultdict(list)
    for o in manifest["ops"]:
        if o.get("load_choice"):
            c = o["load_choice"]
            waiting[(o["op"], o["device"], "/".join(c["types"]), c["fallback"], c["reason"])].append(o)
    for (op, device, types, fallback, why), nodes in waiting.items():
        lines.append(f"  decided at load {op} ({_some_nodes(nodes)}): {device} for {types} weights, "
                     f"else {fallback} ({why})")
    if not f["fallbacks"] and not f["decomposed"] and not waiting:
        lines.append(f"  every op runs natively on {target}")
    for gid, members in fused_groups(manifest).items():
        chain = " + ".join(o["op"] for o in members)
        region = members[-1]["region"]
        lines.append(f"  fused on {members[-1]['device']}: {chain} -> one kernel at %{gid}"
                     f"{' (per layer)' if region == 'layer' else ''}")
    notes = sorted({o["placement_note"] for o in manifest["ops"] if o.get("placement_note")})
    for note in notes:
        lines.append(f"  note: {note}")
    fit = manifest.get("fit")
    for d, info in manifest["devices"].items():
        if d not in f["per_device"]:
            continue
        mem = (
            f"  memory {d}: {info['activation_slots']} activation slots, {fmt_bytes(info['memory_bytes'])}"
            f"{'' if info['memory_verified'] else ' (unverified)'}"
        )
        if fit and d in fit["uses"]:
            u = fit["uses"][d]
            mem += (
                f"; weights {fmt_bytes(u['weights'])}, activations {fmt_bytes(u['activations'])} "
                f"(n_batch {fit['n_batch']}), KV {fmt_bytes(u['kv_per_token'])}/token"
            )
        lines.append(mem)
    if fit:
        lines.append(
            f"  max n_ctx: {fit['max_n_ctx']} (limited by {fit['limit']}; "
            + ", ".join(f"{p}: {n}" for p, n in fit["per_pool_max"].items())
            + ")"
        )
    else:
        lines.append("  max n_ctx: unknown (give --gguf FILE or --specialize FILE to fit the model)")
    return "\n".join(lines)


def _some_nodes(nodes: list[dict]) -> str:
    """The first four nodes as "%12 attn_q, %14 attn_k" and how many more ("+20")."""
    where = ", ".join(f"%{o['id']}{' ' + o['label'] if o['label'] else ''}" for o in nodes[:4])
    return where + (f" +{len(nodes) - 4}" if len(nodes) > 4 else "")


def fused_groups(manifest: dict) -> dict[int, list[dict]]:
    """Fused pointwise groups (compiler/passes/fuse_pointwise.py): the kernel's node id -> its members."""
    groups: dict[int, list[dict]] = defaultdict(list)
    for o in manifest["ops"]:
        if o.get("fused"):
            groups[o["fused"]["group"]].append(o)
    return dict(groups)


def _fused_note(o: dict) -> str:
    f = o.get("fused")
    if not f:
        return ""
    if f["group"] == o["id"]:
        return "runs its fused group's kernel"
    return f"fused into %{f['group']}" + ("" if f["stored"] else " (not stored)")


def explain(manifest: dict) -> str:
    """One row per op node, in run order: id, region, op, label, device, why, DSL location."""
    rows = [("id", "region", "op", "label", "device", "why", "where")]
    for o in manifest["ops"]:
        if o["op"] in ("weight",):
            continue
        why = o.get("fallback") or o.get("placement_note") or ""
        if o.get("load_choice"):
            c = o["load_choice"]
            why = f"decided at load: here for {'/'.join(c['types'])} weights, else {c['fallback']}"
        if o.get("decomposed_from"):
            why = "decomposed from " + o["decomposed_from"].split(":")[0]
        if o["op"] == "transfer":
            why = f"{o['transfer']['src']} -> {o['transfer']['dst']}"
        if o.get("fused"):
            why = "; ".join(w for w in (why, _fused_note(o)) if w)
        rows.append((f"%{o['id']}", o["region"], o["op"], o["label"] or "", o["device"], why, o["loc"] or ""))
    widths = [max(len(r[k]) for r in rows) for k in range(5)]
    out = []
    for r in rows:
        out.append(
            "  ".join(r[k].ljust(widths[k]) for k in range(5)) + "  " + r[5] + (f"  [{r[6]}]" if r[6] else "")
        )
    return "\n".join(out)


def graph_html(manifest: dict) -> str:
    """A self-contained page: one lane per device, one row per op in run order, edges between rows."""
    ops = [o for o in manifest["ops"] if o["op"] not in QUIET]
    devices = list(dict.fromkeys([manifest["device_profile"]] + [o["device"] for o in ops]))
    color = {d: PALETTE[k % len(PALETTE)] for k, d in enumerate(devices)}
    lane_w, row_h, top, left = 260, 26, 70, 20
    x_of = {d: left + k * lane_w for k, d in enumerate(devices)}
    row = {o["id"]: k for k, o in enumerate(ops)}
    height = top + row_h * len(ops) + 30
    why_x = left + lane_w * len(devices)
    width = why_x + 420
    svg = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'font-family="sans-serif" font-size="12">'
        )
    ]
    for d in devices:
        x = x_of[d]
        svg.append(
            f'<rect x="{x}" y="40" width="{lane_w - 12}" height="{height - 50}" fill="{color[d]}" '
            f'opacity="0.08" rx="6"/>'
        )
        svg.append(
            f'<text x="{x + 8}" y="60" font-weight="bold" font-size="14" fill="{color[d]}">'
            f"{html.escape(d)}</text>"
        )
    regions_seen = set()
    for o in ops:
        y = top + row[o["id"]] * row_h
        if o["region"] not in regions_seen:
            regions_seen.add(o["region"])
            svg.append(
                f'<line x1="{left}" x2="{width - 10}" y1="{y - 3}" y2="{y - 3}" stroke="#999" '
                f'stroke-dasharray="4 3"/><text x="{why_x - 14}" y="{y + 10}" text-anchor="end" '
                f'font-size="10" '
                f'fill="#777">{o["region"]}{" (x n_layer)" if o["region"] == "layer" else ""}</text>'
            )
            if len(regions_seen) == 1:
                svg.append(
                    f'<text x="{why_x}" y="54" font-weight="bold" fill="#555">why not on '
                    f"{html.escape(manifest['device_profile'])}</text>"
                )
    for o in ops:  # edges under the boxes
        for src in o.get("inputs", []):
            if src in row:
                s = next(p for p in ops if p["id"] == src)
                x1, y1 = x_of[s["device"]] + 110, top + row[src] * row_h + 18
                x2, y2 = x_of[o["device"]] + 110, top + row[o["id"]] * row_h + 2
                stroke = "#d62728" if s["device"] != o["device"] else "#bbb"
                svg.append(
                    f'<path d="M{x1},{y1} C{x1},{(y1 + y2) / 2} {x2},{(y1 + y2) / 2} {x2},{y2}" '
                    f'fill="none" stroke="{stroke}" stroke-width="1.2"/>'
                )
    for gid, members in fused_groups(manifest).items():  # a frame around each fused group
        shown = [m for m in members if m["id"] in row]
        if len(shown) > 1:
            y0, y1 = top + row[shown[0]["id"]] * row_h - 2, top + row[shown[-1]["id"]] * row_h + 22
            x = x_of[shown[-1]["device"]] - 4
            svg.append(
                f'<g><title>fused: one generated kernel at %{gid}</title><rect x="{x}" y="{y0}" width="228" '
                f'height="{y1 - y0}" rx="6" fill="none" stroke="#555" stroke-dasharray="3 2"/></g>'
            )
    for o in ops:
        y = top + row[o["id"]] * row_h
        x = x_of[o["device"]]
        why = o.get("fallback") or ""
        if o.get("decomposed_from"):
            why = "part of " + o["decomposed_from"].split(":")[0] + " (decomposed, see above)"
        if o.get("fused"):
            why = "; ".join(w for w in (why, _fused_note(o)) if w)
        is_t = o["op"] == "transfer"
        fill = "#fff" if is_t else color[o["device"]]
        stroke = "#d62728" if (o.get("fallback") or is_t) else color[o["device"]]
        text = f"%{o['id']} {o['op']}" + (f" {o['label']}" if o["label"] and not is_t else "")
        if is_t:
            text = f"transfer {o['transfer']['src']} -> {o['transfer']['dst']}"
        tip = html.escape(
            f"%{o['id']} {o['op']} {o['label'] or ''} on {o['device']}\n{why}\n{o['loc'] or ''}"
        )
        svg.append(
            f'<g><title>{tip}</title><rect x="{x}" y="{y}" width="220" height="20" rx="4" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="{2 if o.get("fallback") else 1}"/>'
            f'<text x="{x + 6}" y="{y + 14}" fill="{"#222" if is_t else "#fff"}">{html.escape(text[:34])}'
            f"</text></g>"
        )
        if why:
            svg.append(
                f'<text x="{why_x}" y="{y + 14}" fill="#555" font-size="10">'
                f"{html.escape(why[:72])}{'…' if len(why) > 72 else ''}</text>"
            )
    svg.append(
        f'<text x="{left}" y="24" font-size="16" font-weight="bold">{html.escape(manifest["arch"])} on '
        f"{html.escape(manifest['device_profile'])}: red edges and boxes are device changes and "
        f"fallbacks</text></svg>"
    )
    body = "\n".join(svg)
    text = html.escape(summary(manifest))
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>llmc: {html.escape(manifest['arch'])} on "
        f"{html.escape(manifest['device_profile'])}</title></head><body style='margin:12px'>\n"
        f"<pre style='font-size:13px'>{text}</pre>\n{body}\n</body></html>\n"
    )


def targets_table(profiles: dict) -> str:
    """`llmc targets`: each profile, its codegen, memory, and which ops are native, decomposed or not."""
    from llmc.ir.ops import Op

    from .devices import UNPLACED
    from .passes.decompose_ops import decomposable

    lines = []
    for p in profiles.values():
        runs = lambda op, p=p: op in p.ops and p.ops[op].native
        native = [op for op in Op if op not in UNPLACED and runs(op)]
        decomp = [op for op in Op if op not in UNPLACED and not runs(op) and decomposable(op, runs)]
        other = [op for op in Op if op not in UNPLACED and not runs(op) and op not in decomp]
        mem = fmt_bytes(p.memory_bytes) + ("" if p.memory_verified else " (unverified)")
        lines.append(f"{p.name}: {p.description}")
        lines.append(
            f"  codegen {p.codegen}, fallback {p.fallback or '-'}, memory {mem}"
            f"{' shared with ' + p.fallback if p.shared_with_fallback else ''}, alignment "
            f"{p.alignment} B, cores {p.cores}" + (f", UB {p.ub_bytes} B" if p.ub_bytes else "")
        )
        limits = []
        for op in native:
            r = p.ops[op]
            if r.weights is not None:
                limits.append(f"{op.value}[{'/'.join(r.weights)}]")
            elif r.dim_multiple_of > 1:
                limits.append(f"{op.value}[ne0%{r.dim_multiple_of}]")
            elif r.refuse_inputs:
                limits.append(f"{op.value}[no {'/'.join(r.refuse_inputs)}]")
            else:
                limits.append(op.value)
        lines.append(f"  native: {', '.join(limits)}")
        if decomp:
            lines.append(f"  decomposed: {', '.join(op.value for op in decomp)}")
        if other:
            lines.append(f"  to {p.fallback or '-'}: {', '.join(op.value for op in other)}")
    return "\n".join(lines)
