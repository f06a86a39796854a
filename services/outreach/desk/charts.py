"""Chart geometry for server-rendered inline SVG: plain numbers in, shapes out, no JavaScript."""

from __future__ import annotations

from dataclasses import dataclass

WIDTH = 640
LABEL_WIDTH = 190
ROW_HEIGHT = 26
COLUMN_AREA_HEIGHT = 160


@dataclass(frozen=True)
class Mark:
    """One bar: its label, the value as text, and where it is drawn."""

    label: str
    text: str
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Chart:
    title: str
    marks: list[Mark]
    width: int
    height: int
    empty: bool


def _scale(values: list[float], ceiling: float | None) -> float:
    top = max([*values, 0.0]) if ceiling is None else ceiling
    return top or 1.0


def bars(title: str, items: list[tuple[str, float | None]], *, fmt, ceiling: float | None = None) -> Chart:
    """Horizontal bars, one row per item (labels can be long: root causes)."""
    top = _scale([value or 0.0 for _, value in items], ceiling)
    room = WIDTH - LABEL_WIDTH - 70
    marks = [
        Mark(
            label=label,
            text=fmt(value),
            x=LABEL_WIDTH,
            y=index * ROW_HEIGHT + 4,
            width=round(room * (value or 0.0) / top, 1),
            height=ROW_HEIGHT - 8,
        )
        for index, (label, value) in enumerate(items)
    ]
    return Chart(title=title, marks=marks, width=WIDTH, height=max(len(items), 1) * ROW_HEIGHT, empty=not items)


def columns(title: str, items: list[tuple[str, float | None]], *, fmt, ceiling: float | None = None) -> Chart:
    """Vertical columns in time order (weeks), labelled underneath."""
    top = _scale([value or 0.0 for _, value in items], ceiling)
    slot = (WIDTH - 20) / max(len(items), 1)
    marks = []
    for index, (label, value) in enumerate(items):
        height = round(COLUMN_AREA_HEIGHT * (value or 0.0) / top, 1)
        marks.append(
            Mark(
                label=label,
                text=fmt(value),
                x=round(10 + index * slot + slot * 0.15, 1),
                y=round(20 + COLUMN_AREA_HEIGHT - height, 1),
                width=round(slot * 0.7, 1),
                height=height,
            )
        )
    return Chart(title=title, marks=marks, width=WIDTH, height=COLUMN_AREA_HEIGHT + 50, empty=not items)


def percent(value: float | None) -> str:
    return "no endings yet" if value is None else f"{value * 100:.0f}%"


def money(currency: str):
    """A formatter for minor units of one currency."""

    def fmt(value: float | None) -> str:
        return f"{(value or 0) / 100:,.0f} {currency.upper()}"

    return fmt
