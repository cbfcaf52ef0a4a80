"""Charts drawn on the server as SVG geometry, so they show without JavaScript or a chart
service. Colours come from CSS classes (one per gateway), which the stylesheet sets for light
and dark schemes."""

from decimal import Decimal

from studio import ledger
from studio.gateways import catalog

HEIGHT = 160  # drawing units of the plot area
BAR = 10  # width of a day's bar
GAP = 4
LEFT = 44  # room for the axis labels
TOP = 8  # room for the top label
BOTTOM = 18


def stacked_bars(days, amounts):
    """One bar per day, stacked by gateway: `amounts` is {day: {gateway: Decimal}}.

    Returns what the template draws: the viewBox size, the bars (each with its segments and a
    title giving the figures), the axis ticks and the legend.
    """
    totals = [sum(amounts.get(day, {}).values(), Decimal(0)) for day in days]
    top = nice_ceiling(max(totals, default=Decimal(0)))
    gateways = [key for key in catalog.GATEWAYS if any(key in amounts.get(day, {}) for day in days)]
    bars = []
    for index, (day, total) in enumerate(zip(days, totals, strict=True)):
        x = LEFT + index * (BAR + GAP)
        y = TOP + HEIGHT
        segments = []
        for gateway in gateways:
            amount = amounts.get(day, {}).get(gateway)
            if not amount:
                continue
            height = float(amount / top) * HEIGHT if top else 0
            y -= height
            segments.append({"gateway": gateway, "y": round(y, 2), "height": round(height, 2)})
        parts = ", ".join(
            f"{catalog.GATEWAYS[gateway].display_name} {ledger.yuan(amounts[day][gateway])}"
            for gateway in gateways if amounts.get(day, {}).get(gateway)
        )
        title = f"{day:%a %b %-d}: {ledger.yuan(total)}" + (f" ({parts})" if parts else "")
        bars.append({"day": day, "x": x, "segments": segments, "title": title, "total": total,
                     "label": f"{day:%-d}" if len(days) <= 31 or day.day == 1 else ""})
    ticks = [
        {"y": round(TOP + HEIGHT - HEIGHT * i / 4, 2), "label": ledger.yuan(top * i / 4)} for i in range(5)
    ]
    return {
        "width": LEFT + len(days) * (BAR + GAP),
        "height": TOP + HEIGHT + BOTTOM,
        "top": TOP,
        "plot_height": HEIGHT,
        "bar_width": BAR,
        "bars": bars,
        "ticks": ticks,
        "legend": [(key, catalog.GATEWAYS[key].display_name) for key in gateways],
        "empty": not any(totals),
    }


def nice_ceiling(value):
    """A round top for the axis: 1, 2 or 5 × a power of ten, at least the largest bar."""
    if value <= 0:
        return Decimal(1)
    step = Decimal("0.01")
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10
