#!/usr/bin/env python3
"""Render Excalidraw wireframes (.excalidraw JSON) to plain SVG.

Dependency-free (Python 3 standard library only).

Usage:
    python3 mockups/export_svg.py              # every *.excalidraw next to this script
    python3 mockups/export_svg.py a.excalidraw b.excalidraw

Each ``name.excalidraw`` is written to ``name.svg`` in the same directory.

Supported element types: rectangle, diamond, ellipse, line, arrow, text,
frame (outline + name label) and freedraw (as a polyline). Images and
embeddables are skipped with a warning. The output is deliberately plain: straight
strokes (no hand-drawn roughness), the element's own colours, and a system
sans-serif font, so the SVG reads as a clean wireframe.
"""

import json
import math
import sys
from pathlib import Path
from xml.sax.saxutils import escape

SANS = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
MONO = "ui-monospace, 'Cascadia Code', 'SFMono-Regular', Menlo, Consolas, monospace"
FRAME_LABEL_SIZE = 14
FRAME_LABEL_GAP = 8
PADDING = 24


def attr(value):
    """Escape a value for use inside a double-quoted XML attribute."""
    return escape(str(value), {'"': "&quot;"})


def num(value):
    """Format a number compactly (no trailing zeros)."""
    text = f"{float(value):.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def color(value, fallback="none"):
    if not value or value == "transparent":
        return fallback
    return value


def corner_radius(el):
    """Same rule as Excalidraw's getCornerRadius()."""
    roundness = el.get("roundness")
    if not roundness:
        return 0
    size = min(abs(el.get("width", 0)), abs(el.get("height", 0)))
    if roundness.get("type") == 3:  # adaptive radius
        fixed = roundness.get("value") or 32
        cutoff = fixed / 0.25
        return size * 0.25 if size <= cutoff else fixed
    return size * 0.25  # proportional / legacy


def dash(el):
    width = el.get("strokeWidth", 1) or 1
    style = el.get("strokeStyle", "solid")
    if style == "dashed":
        return f' stroke-dasharray="{num(8 * width)} {num(6 * width)}"'
    if style == "dotted":
        return f' stroke-dasharray="{num(1.5 * width)} {num(5 * width)}" stroke-linecap="round"'
    return ""


class Renderer:
    def __init__(self, data):
        self.data = data
        self.elements = [e for e in data.get("elements", []) if not e.get("isDeleted")]
        self.defs = []
        self.patterns = {}
        self.warnings = []

    # ----------------------------------------------------------- geometry
    def bounds(self):
        xs, ys = [], []
        for el in self.elements:
            x, y = el.get("x", 0), el.get("y", 0)
            if el["type"] in ("line", "arrow", "freedraw") and el.get("points"):
                for px, py in el["points"]:
                    xs.append(x + px)
                    ys.append(y + py)
                continue
            w, h = el.get("width", 0), el.get("height", 0)
            xs += [x, x + w]
            ys += [y, y + h]
            if el["type"] in ("frame", "magicframe"):
                ys.append(y - FRAME_LABEL_SIZE * 1.25 - FRAME_LABEL_GAP)
        if not xs:
            return 0, 0, 100, 100
        return min(xs), min(ys), max(xs), max(ys)

    # ----------------------------------------------------------- painting
    def fill(self, el):
        bg = color(el.get("backgroundColor"))
        if bg == "none":
            return "none"
        style = el.get("fillStyle", "solid")
        if style == "solid":
            return bg
        # hachure / cross-hatch / zigzag -> light diagonal line pattern
        key = (bg, style)
        if key not in self.patterns:
            pid = f"hatch{len(self.patterns)}"
            self.patterns[key] = pid
            lines = f'<line x1="0" y1="0" x2="0" y2="8" stroke="{attr(bg)}" stroke-width="2"/>'
            if style == "cross-hatch":
                lines += f'<line x1="0" y1="4" x2="8" y2="4" stroke="{attr(bg)}" stroke-width="2"/>'
            self.defs.append(
                f'<pattern id="{pid}" width="8" height="8" patternUnits="userSpaceOnUse" '
                f'patternTransform="rotate(45)">{lines}</pattern>'
            )
        return f"url(#{self.patterns[key]})"

    def stroke_attrs(self, el):
        stroke = color(el.get("strokeColor"))
        width = el.get("strokeWidth", 1) or 1
        if stroke == "none":
            return ' stroke="none"'
        return f' stroke="{attr(stroke)}" stroke-width="{num(width)}"{dash(el)}'

    def wrap(self, el, body):
        """Apply opacity and rotation to an element's SVG fragment."""
        extra = ""
        opacity = el.get("opacity", 100)
        if opacity is not None and opacity < 100:
            extra += f' opacity="{num(opacity / 100)}"'
        angle = el.get("angle") or 0
        if angle:
            cx = el.get("x", 0) + el.get("width", 0) / 2
            cy = el.get("y", 0) + el.get("height", 0) / 2
            extra += f' transform="rotate({num(math.degrees(angle))} {num(cx)} {num(cy)})"'
        label = f' id="{attr(el.get("id", ""))}"' if el.get("id") else ""
        return f"<g{label}{extra}>{body}</g>"

    def rectangle(self, el):
        r = corner_radius(el)
        rx = f' rx="{num(r)}"' if r else ""
        return (
            f'<rect x="{num(el["x"])}" y="{num(el["y"])}" width="{num(el["width"])}" '
            f'height="{num(el["height"])}"{rx} fill="{self.fill(el)}"{self.stroke_attrs(el)}/>'
        )

    def frame(self, el):
        name = el.get("name") or "Frame"
        label_y = el["y"] - FRAME_LABEL_GAP - FRAME_LABEL_SIZE * 0.625
        return (
            f'<rect x="{num(el["x"])}" y="{num(el["y"])}" width="{num(el["width"])}" '
            f'height="{num(el["height"])}" rx="4" fill="none" stroke="#868e96" stroke-width="1"/>'
            f'<text x="{num(el["x"])}" y="{num(label_y)}" dominant-baseline="central" '
            f'font-family="{attr(SANS)}" font-size="{FRAME_LABEL_SIZE}" fill="#868e96">'
            f"{escape(name)}</text>"
        )

    def ellipse(self, el):
        rx, ry = el["width"] / 2, el["height"] / 2
        return (
            f'<ellipse cx="{num(el["x"] + rx)}" cy="{num(el["y"] + ry)}" rx="{num(rx)}" '
            f'ry="{num(ry)}" fill="{self.fill(el)}"{self.stroke_attrs(el)}/>'
        )

    def diamond(self, el):
        x, y, w, h = el["x"], el["y"], el["width"], el["height"]
        pts = [(x + w / 2, y), (x + w, y + h / 2), (x + w / 2, y + h), (x, y + h / 2)]
        points = " ".join(f"{num(px)},{num(py)}" for px, py in pts)
        return f'<polygon points="{points}" fill="{self.fill(el)}"{self.stroke_attrs(el)}/>'

    def arrowhead(self, kind, tip, prev, el):
        if not kind:
            return ""
        (tx, ty), (px, py) = tip, prev
        seg = math.hypot(tx - px, ty - py)
        if seg == 0:
            return ""
        stroke = attr(color(el.get("strokeColor"), "#1e1e1e"))
        width = num(el.get("strokeWidth", 1) or 1)
        size = min(10 + 2 * (el.get("strokeWidth", 1) or 1), seg / 2)
        ux, uy = (tx - px) / seg, (ty - py) / seg
        if kind in ("dot", "circle", "circle_outline"):
            fill = "none" if kind == "circle_outline" else stroke
            return (
                f'<circle cx="{num(tx)}" cy="{num(ty)}" r="{num(size / 3)}" fill="{fill}" '
                f'stroke="{stroke}" stroke-width="{width}"/>'
            )
        if kind == "bar":
            nx, ny = -uy * size / 2, ux * size / 2
            return (
                f'<line x1="{num(tx + nx)}" y1="{num(ty + ny)}" x2="{num(tx - nx)}" '
                f'y2="{num(ty - ny)}" stroke="{stroke}" stroke-width="{width}"/>'
            )
        spread = math.radians(25)
        wings = []
        for sign in (1, -1):
            a = math.atan2(-uy, -ux) + sign * spread
            wings.append((tx + size * math.cos(a), ty + size * math.sin(a)))
        if kind in ("triangle", "triangle_outline"):
            fill = "none" if kind == "triangle_outline" else stroke
            pts = " ".join(f"{num(a)},{num(b)}" for a, b in [wings[0], (tx, ty), wings[1]])
            return f'<polygon points="{pts}" fill="{fill}" stroke="{stroke}" stroke-width="{width}"/>'
        pts = " ".join(f"{num(a)},{num(b)}" for a, b in [wings[0], (tx, ty), wings[1]])
        return (
            f'<polyline points="{pts}" fill="none" stroke="{stroke}" stroke-width="{width}" '
            f'stroke-linecap="round" stroke-linejoin="round"/>'
        )

    def linear(self, el):
        pts = [(el["x"] + px, el["y"] + py) for px, py in el.get("points", [])]
        if len(pts) < 2:
            return ""
        points = " ".join(f"{num(px)},{num(py)}" for px, py in pts)
        closed = el["type"] == "line" and len(pts) > 2 and pts[0] == pts[-1]
        fill = self.fill(el) if closed else "none"
        out = (
            f'<polyline points="{points}" fill="{fill}"{self.stroke_attrs(el)} '
            f'stroke-linecap="round" stroke-linejoin="round"/>'
        )
        if el["type"] == "arrow":
            out += self.arrowhead(el.get("endArrowhead"), pts[-1], pts[-2], el)
            out += self.arrowhead(el.get("startArrowhead"), pts[0], pts[1], el)
        return out

    def text(self, el):
        lines = str(el.get("text", "")).split("\n")
        size = el.get("fontSize", 20)
        line_h = size * (el.get("lineHeight") or 1.25)
        family = MONO if el.get("fontFamily") == 3 else SANS
        align = el.get("textAlign", "left")
        anchor, x = {
            "center": ("middle", el["x"] + el.get("width", 0) / 2),
            "right": ("end", el["x"] + el.get("width", 0)),
        }.get(align, ("start", el["x"]))
        top = el["y"]
        block_h = line_h * len(lines)
        if el.get("containerId") and el.get("height", block_h) > block_h:
            # bound text: honour vertical alignment inside its own box
            valign = el.get("verticalAlign", "middle")
            if valign == "middle":
                top += (el["height"] - block_h) / 2
            elif valign == "bottom":
                top += el["height"] - block_h
        fill = attr(color(el.get("strokeColor"), "#1e1e1e"))
        spans = []
        for i, line in enumerate(lines):
            y = top + line_h * (i + 0.5)
            spans.append(f'<tspan x="{num(x)}" y="{num(y)}">{escape(line) or " "}</tspan>')
        return (
            f'<text xml:space="preserve" text-anchor="{anchor}" dominant-baseline="central" '
            f'font-family="{attr(family)}" font-size="{num(size)}" fill="{fill}">'
            + "".join(spans)
            + "</text>"
        )

    def element(self, el):
        kind = el.get("type")
        if kind == "rectangle":
            return self.rectangle(el)
        if kind in ("frame", "magicframe"):
            return self.frame(el)
        if kind == "ellipse":
            return self.ellipse(el)
        if kind == "diamond":
            return self.diamond(el)
        if kind in ("line", "arrow", "freedraw"):
            return self.linear(el)
        if kind == "text":
            return self.text(el)
        self.warnings.append(f"skipped unsupported element type {kind!r} ({el.get('id')})")
        return ""

    def render(self, title=""):
        x0, y0, x1, y1 = self.bounds()
        x0, y0 = x0 - PADDING, y0 - PADDING
        w, h = (x1 - x0) + PADDING, (y1 - y0) + PADDING
        bg = color(self.data.get("appState", {}).get("viewBackgroundColor"), "#ffffff")
        # Frames are painted first so their outline never hides content.
        ordered = [e for e in self.elements if e["type"] in ("frame", "magicframe")]
        ordered += [e for e in self.elements if e["type"] not in ("frame", "magicframe")]
        body = [self.wrap(el, self.element(el)) for el in ordered]
        head = [
            '<?xml version="1.0" encoding="UTF-8"?>',
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{num(w)}" height="{num(h)}" '
            f'viewBox="{num(x0)} {num(y0)} {num(w)} {num(h)}" role="img" '
            f'aria-label="{attr(title)}">',
        ]
        if title:
            head.append(f"<title>{escape(title)}</title>")
        if self.defs:
            head.append("<defs>" + "".join(self.defs) + "</defs>")
        head.append(
            f'<rect x="{num(x0)}" y="{num(y0)}" width="{num(w)}" height="{num(h)}" fill="{attr(bg)}"/>'
        )
        return "\n".join(head + body + ["</svg>", ""])


def export(path):
    path = Path(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("type") != "excalidraw":
        raise ValueError(f"{path}: not an Excalidraw file (type={data.get('type')!r})")
    renderer = Renderer(data)
    title = f"Wireframe: {path.stem}"
    svg = renderer.render(title)
    out = path.with_suffix(".svg")
    out.write_text(svg, encoding="utf-8")
    for warning in renderer.warnings:
        print(f"{path.name}: warning: {warning}", file=sys.stderr)
    return out


def main(argv):
    paths = argv[1:] or sorted(Path(__file__).resolve().parent.glob("*.excalidraw"))
    if not paths:
        print("no .excalidraw files found", file=sys.stderr)
        return 1
    for p in paths:
        out = export(p)
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
