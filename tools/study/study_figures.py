"""The calibration study's figures, drawn with Pillow for tools/study/study_report.py:
fashion-mnist-reliability.png (reliability diagrams, seed 0 of each method and regime),
fashion-mnist-convergence.png (CE's validation accuracy and ECE against epoch) and
fashion-mnist-fractions.png (test accuracy and ECE against the labelled fraction, CE and
CSM). Each is written whole, through a temporary file, or not at all."""
import math
import os
import statistics

FIGURE_METHODS = [("ce", "CE", ""), ("ce", "CE + temperature scaling", "-ts"), ("bsce-gra", "BSCE-GRA", ""),
                  ("csm", "CSM", ""), ("csm-bsce-gra", "CSM + BSCE-GRA", "")]
REGIME_COLOURS = {"scarce": (214, 39, 40), "middle": (255, 127, 14), "full": (31, 119, 180)}
METHOD_STYLES = {"ce": ("CE", (31, 119, 180), False), "ce-ts": ("CE + temperature scaling", (148, 103, 189), True),
                 "csm": ("CSM", (44, 160, 44), False)}
PANEL_WIDTH, PANEL_HEIGHT, MARGIN = 760, 460, 80


def round_ticks(low: float, high: float, most: int = 7) -> tuple[float, float, list[float]]:
    """An axis range widened to round steps (0.5, 1, 2, 2.5, 5, 10 or 20 points of a
    fraction) and its ticks, at most `most` of them."""
    step = next((s for s in (0.005, 0.01, 0.02, 0.025, 0.05, 0.1, 0.2) if (high - low) / s <= most - 1), 0.25)
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    return first * step, last * step, [round(k * step, 6) for k in range(first, last + 1)]


class Panel:
    """One panel of a figure: a framed plot area whose value axis (a fraction, shown in %)
    runs over round steps with light grid lines, and whose other axis is linear or
    logarithmic over `x_range`."""

    def __init__(self, draw, index: int, title: str, x_range: tuple[float, float], values: list[float],
                 x_log: bool = False) -> None:
        from PIL import ImageFont
        self.draw, self.x_log = draw, x_log
        self.font, self.small = ImageFont.load_default(size=22), ImageFont.load_default(size=18)
        self.x_low, self.x_high = (math.log(v) for v in x_range) if x_log else x_range
        self.low, self.high, self.ticks = round_ticks(max(0.0, min(values)), min(1.0, max(values)))
        self.box = (index * PANEL_WIDTH + MARGIN, 40, (index + 1) * PANEL_WIDTH - 20, PANEL_HEIGHT - 50)
        self.title = title

    def place(self, x: float, value: float) -> tuple[float, float]:
        """Pixel position of (x, value); values outside the axis are drawn at its edge."""
        x0, y0, x1, y1 = self.box
        x = math.log(x) if self.x_log else x
        value = min(self.high, max(self.low, value))
        return (x0 + (x1 - x0) * (x - self.x_low) / (self.x_high - self.x_low),
                y1 - (y1 - y0) * (value - self.low) / (self.high - self.low))

    def frame(self, x_ticks: list[tuple[float, str]], x_label: str) -> None:
        """The title, grid lines, the box, and both axes' ticks and labels."""
        draw, (x0, y0, x1, y1) = self.draw, self.box
        draw.text(((x0 + x1) / 2, 20), self.title, fill="black", font=self.font, anchor="mm")
        for value in self.ticks:
            _, y = self.place(math.exp(self.x_low) if self.x_log else self.x_low, value)
            draw.line((x0, y, x1, y), fill=(225, 225, 225))
            draw.line((x0 - 5, y, x0, y), fill="black")
            draw.text((x0 - 8, y), f"{value * 100:g}%", fill="black", font=self.small, anchor="rm")
        draw.rectangle((x0, y0, x1, y1), outline="black")
        for x_value, label in x_ticks:
            x, _ = self.place(x_value, self.low)
            draw.line((x, y1, x, y1 + 5), fill="black")
            draw.text((x, y1 + 8), label, fill="black", font=self.small, anchor="mt")
        draw.text(((x0 + x1) / 2, y1 + 32), x_label, fill="black", font=self.small, anchor="mt")

    def curve(self, points: list[tuple[float, float]], colour, width: int = 2, dot: float = 2.5,
              dashed: bool = False) -> None:
        """Points joined by a line (dashed if asked), each marked with a dot."""
        xy = [self.place(x, value) for x, value in points]
        for (xa, ya), (xb, yb) in zip(xy, xy[1:]):
            if not dashed:
                self.draw.line((xa, ya, xb, yb), fill=colour, width=width)
                continue
            length = math.hypot(xb - xa, yb - ya)
            for start in range(0, int(length), 14):      # 8 pixels drawn, 6 left out
                t0, t1 = start / length, min(1.0, (start + 8) / length)
                self.draw.line((xa + (xb - xa) * t0, ya + (yb - ya) * t0, xa + (xb - xa) * t1, ya + (yb - ya) * t1),
                               fill=colour, width=width)
        self.dots(points, colour, dot)

    def dots(self, points: list[tuple[float, float]], colour, radius: float = 2.5) -> None:
        if radius <= 0:
            return
        for x, y in (self.place(x, value) for x, value in points):
            self.draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)

    def legend(self, entries: list[tuple[str, tuple, bool]], top: float, width: int = 150) -> None:
        """(label, colour, dashed) entries, one per row from pixel row `top`, at the right."""
        x1 = self.box[2]
        for n, (label, colour, dashed) in enumerate(entries):
            y = top + 24 * n
            segments = [(0, 8), (14, 22), (28, 30)] if dashed else [(0, 30)]
            for a, b in segments:
                self.draw.line((x1 - width + a, y, x1 - width + b, y), fill=colour, width=3)
            self.draw.text((x1 - width + 38, y), label, fill="black", font=self.small, anchor="lm")


def save(sheet, path: str) -> None:
    temporary = path + ".tmp.png"
    sheet.save(temporary)
    os.replace(temporary, path)


def convergence(regimes: dict, path: str) -> bool:
    """CE's validation accuracy and ECE against epoch, one line per regime and seed; False
    (nothing written) before any CE run has validation curves."""
    from PIL import Image, ImageDraw
    series = [(regime, points) for regime, entry in regimes.items() for points in entry["ce_curves"].values()
              if points and points[0].get("val_accuracy") is not None]
    if not series:
        return False
    sheet = Image.new("RGB", (2 * PANEL_WIDTH, PANEL_HEIGHT + 40), "white")
    draw = ImageDraw.Draw(sheet)
    max_epoch = max(p["epoch"] for _, points in series for p in points)
    for index, (key, title, low, high) in enumerate([("val_accuracy", "validation accuracy", 0.80, 0.95),
                                                     ("val_ece", "validation ECE", 0.0, 0.08)]):
        # The range covers the epochs after the first fifth; earlier points are clipped to it.
        values = [p[key] for _, points in series for p in points if p["epoch"] > max_epoch / 5] or \
            [p[key] for _, points in series for p in points]
        panel = Panel(draw, index, title + " (CE, every seed)", (0, max_epoch),
                      [min(low, min(values) - 0.01), max(high, max(values) + 0.01)])
        panel.frame([(tick, str(tick)) for tick in range(0, max_epoch + 1, max(1, max_epoch // 5))], "epoch")
        for regime, points in series:
            panel.curve([(p["epoch"], p[key]) for p in points], REGIME_COLOURS.get(regime, (0, 0, 0)))
        shown = [r for r in REGIME_COLOURS if any(s[0] == r for s in series)]
        panel.legend([(r, REGIME_COLOURS[r], False) for r in shown],       # where the curves are not
                     panel.box[3] - 90 if key == "val_accuracy" else panel.box[1] + 20)
    save(sheet, path)
    return True


def fractions(regimes: dict, path: str) -> bool:
    """Test accuracy and ECE against the labelled fraction: CE, CE after temperature scaling
    (ECE only) and CSM, every evaluated seed a small dot, the seeds' means large dots joined
    by a line; False
    (nothing written) before two regimes have an evaluated CE model."""
    from PIL import Image, ImageDraw

    def evaluated(entry: dict, method: str) -> list[dict]:
        return [r for r in entry["methods"].get(method, []) if not r.get("pending")]

    order = sorted(regimes, key=lambda r: regimes[r]["fraction"])
    if sum(bool(evaluated(regimes[r], "ce")) for r in order) < 2:
        return False
    sheet = Image.new("RGB", (2 * PANEL_WIDTH, PANEL_HEIGHT + 40), "white")
    draw = ImageDraw.Draw(sheet)
    x_range = (min(regimes[r]["fraction"] for r in order) / 1.25, max(regimes[r]["fraction"] for r in order) * 1.25)
    for index, (key, title, styles) in enumerate([("accuracy", "test accuracy", ("ce", "csm")),
                                                  ("ece", "test ECE", ("ce", "ce-ts", "csm"))]):
        series = {}
        for style in styles:
            method, field = ("ce", "ts_ece") if style == "ce-ts" else (style, key)
            series[style] = [(regimes[r]["fraction"], [row[field] for row in evaluated(regimes[r], method)]) for r in order]
        values = [v for points in series.values() for _, seeds in points for v in seeds]
        spread = max(0.01, max(values) - min(values))
        panel = Panel(draw, index, title + " (small dots: seeds; large: their mean)", x_range,
                      [min(values) - 0.1 * spread, max(values) + 0.1 * spread], x_log=True)
        panel.frame([(regimes[r]["fraction"], f"{regimes[r]['fraction']:.0%} ({r})") for r in order],
                    "labelled fraction of the fit split")
        for style, points in series.items():
            _, colour, dashed = METHOD_STYLES[style]
            panel.dots([(x, v) for x, seeds in points for v in seeds], colour, 3)
            means = [(x, statistics.mean(seeds)) for x, seeds in points if seeds]
            panel.curve(means, colour, width=3, dot=5.5, dashed=dashed)
        shown = [METHOD_STYLES[s] for s in styles if any(seeds for _, seeds in series[s])]
        # Where the curves are not: accuracy rises with the fraction, ECE falls.
        panel.legend(shown, panel.box[3] - 24 * len(shown) - 8 if key == "accuracy" else panel.box[1] + 20, width=290)
    save(sheet, path)
    return True


def reliability(tables: dict, diagram_path, path: str) -> bool:
    """One row per regime of seed-0 reliability diagrams (`csm evaluate --diagram`'s panels,
    before or after temperature scaling) for the methods of FIGURE_METHODS; `tables` is
    Study.table_models(), `diagram_path(name)` a model's diagram. False (nothing written)
    before any diagram exists."""
    from PIL import Image, ImageDraw, ImageFont
    rows = []
    for regime, table in tables.items():
        panels = []
        for method, title, suffix in FIGURE_METHODS:
            models = table.get(method)
            if not models or not os.path.exists(diagram_path(models[0][1])):
                continue
            image = Image.open(diagram_path(models[0][1])).convert("RGB")
            # Each diagram has two panels, before and after temperature scaling.
            half = (image.width // 2, 0, image.width, image.height) if suffix == "-ts" else (0, 0, image.width // 2, image.height)
            panels.append((f"{title} ({regime})", image.crop(half)))
        if panels:
            rows.append(panels)
    if not rows:
        return False
    font = ImageFont.load_default(size=30)
    width = max(sum(p.width for _, p in row) for row in rows)
    caption = 50
    height = sum(caption + max(p.height for _, p in row) for row in rows)
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    y = 0
    for row in rows:
        x = 0
        for title, panel in row:
            draw.text((x + panel.width // 2, y + caption // 2), title, fill="black", font=font, anchor="mm")
            sheet.paste(panel, (x, y + caption))
            x += panel.width
        y += caption + max(p.height for _, p in row)
    save(sheet, path)
    return True
