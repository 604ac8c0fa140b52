"""The report's Plotly figures: colours, the shared template, and one figure builder per chart.

A builder takes rows already aggregated (and reshaped by :mod:`.sections`) and returns a figure;
:func:`chart` turns a figure into a :class:`~customer_lens.report.blocks.Chart` of the page. Plotly is
imported inside the functions: Airflow DAG files import this package.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeAlias

from customer_lens.report import formatting as fmt
from customer_lens.report.blocks import Chart
from customer_lens.report.queries import Row

# Plotly ships no type information (pyproject names it untyped), so its objects are Any to mypy; the
# aliases say which kind of object a builder takes or returns.
Figure: TypeAlias = Any  # a plotly.graph_objects.Figure
Trace: TypeAlias = Any  # one trace of a figure (go.Bar, go.Scatter...)
Template: TypeAlias = Any  # a plotly.graph_objects.layout.Template

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
INK, MUTED, GRID = "#1f2937", "#6b7280", "#eceff3"
OTHER = "#9ca3af"  # a segment or tier without a colour of its own
NOT_STATED = "#c7ccd4"  # the bars of answers without a reason

# Best to worst, so every chart lists segments in the same order and colour.
SEGMENT_COLORS = {
    "champions": "#1b7f3b",
    "loyal": "#3fa34d",
    "potential_loyalist": "#8cc084",
    "new": "#3b82c4",
    "promising": "#7fb3e0",
    "needs_attention": "#e0b43a",
    "about_to_sleep": "#f08c3a",
    "at_risk": "#d9542b",
    "cant_lose": "#a51d2d",
    "hibernating": "#8d7f9e",
    "lost": "#5b5b66",
    "unsegmented": "#b8bec7",
    "unmatched": "#d5d9df",
    "none": "#d5d9df",
}
TIER_COLORS = {
    "power_player": "#5b2a86",
    "core": "#3b82c4",
    "low_margin": "#e0b43a",
    "long_tail": "#9bb7cf",
    "inactive": "#b8bec7",
    "unsegmented": "#d5d9df",
    "unknown": "#e5e7eb",
    "none": "#d5d9df",
}
PALETTE = ["#3b82c4", "#e07b39", "#3fa34d", "#a51d2d", "#7c5cbf", "#2a9d8f", "#d4a017", "#8d6e63", "#e377c2", "#6b7280"]

# NPS/CSAT figures from fewer answers than this are drawn pale (too few to trust).
MIN_RESPONSES = 30

# The panels of the guerrilla chart: metric, title, how its values read.
GUERRILLA_PANELS: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("new_customers", "1 · New customers", fmt.count),
    ("new_customer_revenue", "1 · Value of new customers", fmt.money),
    ("lost_customers", "2 · Lost customers", fmt.count),
    ("lost_customer_value", "2 · Value of lost customers (12 months before the loss)", fmt.money),
    ("renewals", "3 · Contract renewals", fmt.count),
    ("referrals", "5 · Referrals from the group", fmt.count),
    ("revenue", "4 · Revenue", fmt.money),
    ("gross_margin_pct", "4 · Gross margin %", fmt.pct),
)

# Layout of the stacked bar charts over time (complaints, renewal reasons, loss reasons).
STACKED = {"barmode": "stack", "hovermode": "x unified", "legend_traceorder": "normal", "margin": {"t": 70}}

_PLOTLY_CONFIG = {
    "displaylogo": False,
    "responsive": True,
    "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"],
    "toImageButtonOptions": {"format": "png", "scale": 2},
}


def rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r}, {g}, {b}, {alpha})"


def ordered(values: Iterable[str], order: Iterable[str]) -> list[str]:
    """The distinct ``values`` in the order of ``order`` (e.g. best segment first), the others after, by name."""
    rank = {v: i for i, v in enumerate(order)}
    return sorted(set(values), key=lambda v: (rank.get(v, len(rank)), v))


def _template() -> Template:
    import plotly.graph_objects as go

    axis = {"gridcolor": GRID, "linecolor": "#d1d5db", "zerolinecolor": "#d1d5db", "automargin": True}
    return go.layout.Template(
        layout={
            "font": {"family": FONT, "size": 12, "color": INK},
            "paper_bgcolor": "white",
            "plot_bgcolor": "white",
            "colorway": PALETTE,
            "xaxis": axis,
            "yaxis": axis,
            "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
            "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0, "font": {"size": 11}},
            "hoverlabel": {"font": {"family": FONT}},
            "hovermode": "closest",
            "bargap": 0.25,
        }
    )


def chart(fig: Figure, name: str, *, height: int = 420) -> Chart:
    """The figure in the report's template, as the page's markup (plotly.js itself is inlined once, apart)."""
    from markupsafe import Markup

    fig.update_layout(template=_template(), height=height)
    for annotation in fig.layout.annotations or ():  # subplot titles: small and muted, like the notes
        annotation.font = {"size": 12, "color": MUTED}
    html = fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=f"chart-{name}",
        config=_PLOTLY_CONFIG,
        default_height=f"{height}px",
    )
    return Chart(name, Markup(html))  # plotly's own markup for our figure


def _segment_bar(order: list[str], values: Sequence[float | None], colors: list[str], **traits: Any) -> Trace:
    """One horizontal bar per segment (``order`` bottom to top), labelled by name, no legend."""
    import plotly.graph_objects as go

    return go.Bar(
        y=[fmt.label(s) for s in order],
        x=values,
        orientation="h",
        marker_color=colors,
        cliponaxis=False,
        showlegend=False,
        **traits,
    )


# --- 1. segments ------------------------------------------------------------------------------------


def segment_bars(rows: dict[str, Row]) -> Figure:
    """Customers, revenue and margin per segment side by side, best segment on top."""
    from plotly.subplots import make_subplots

    order = list(reversed(ordered(rows, SEGMENT_COLORS)))
    fig = make_subplots(
        rows=1,
        cols=3,
        shared_yaxes=True,
        horizontal_spacing=0.04,
        subplot_titles=("Customers", "Revenue, 12 months", "Gross margin, 12 months"),
    )
    panels = (("customers", fmt.count), ("revenue", fmt.money), ("gross_margin", fmt.money))
    for col, (key, show) in enumerate(panels, start=1):
        values = [fmt.as_float(rows[s][key]) or 0.0 for s in order]
        bar = _segment_bar(
            order,
            values,
            [SEGMENT_COLORS.get(s, OTHER) for s in order],
            text=[show(v) for v in values],
            textposition="auto",
            hovertemplate="%{y}: %{text}<extra></extra>",
        )
        fig.add_trace(bar, row=1, col=col)
    fig.update_xaxes(showticklabels=False, showgrid=False)
    fig.update_layout(margin={"t": 30})
    return fig


def tier_shares(tiers: dict[str, Row], totals: dict[str, float]) -> Figure:
    """Share of customers against share of revenue and margin per value tier ("the few power players")."""
    import plotly.graph_objects as go

    tier_order = ordered(tiers, TIER_COLORS)
    fig = go.Figure()
    for key, name, color in (
        ("customers", "Share of customers", "#b8c4d6"),
        ("revenue", "Share of revenue", "#3b82c4"),
        ("gross_margin", "Share of gross margin", "#5b2a86"),
    ):
        shares = [100 * (fmt.as_float(tiers[t][key]) or 0.0) / totals[key] if totals[key] else 0.0 for t in tier_order]
        fig.add_trace(
            go.Bar(
                x=[fmt.label(t) for t in tier_order],
                y=shares,
                name=name,
                marker_color=color,
                text=[f"{s:.0f} %" for s in shares],
                textposition="outside",
                cliponaxis=False,
                hovertemplate="%{x}: %{y:.1f} %<extra>" + name + "</extra>",
            )
        )
    fig.update_yaxes(ticksuffix=" %", rangemode="tozero")
    fig.update_layout(barmode="group", margin={"t": 60})
    return fig


def segment_history(series: dict[str, dict[dt.date, int]], dates: list[dt.date]) -> Figure:
    """Segment sizes over time, stacked (snapshots are month ends; the last one is the as-of date)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for segment in ordered(series, SEGMENT_COLORS):
        fig.add_trace(
            go.Scatter(
                x=dates,
                y=[series[segment].get(d, 0) for d in dates],
                name=fmt.label(segment),
                stackgroup="segments",
                mode="lines",
                line={"width": 0.6, "color": SEGMENT_COLORS.get(segment, OTHER)},
                fillcolor=rgba(SEGMENT_COLORS.get(segment, OTHER), 0.82),
                hovertemplate="%{x|%b %Y}: %{y:,} customers<extra>" + fmt.label(segment) + "</extra>",
            )
        )
    fig.update_yaxes(title_text="customers")
    fig.update_layout(hovermode="x unified", margin={"t": 70})
    return fig


# --- 2. migrations ----------------------------------------------------------------------------------


def migration_heatmap(froms: list[str], tos: list[str], counts: dict[tuple[str, str], int], title: str) -> Figure:
    """From (rows) → to (columns): counts as text, coloured by share of the row."""
    import plotly.graph_objects as go

    row_totals = {f: sum(counts.get((f, t), 0) for t in tos) for f in froms}
    share = [[100 * counts.get((f, t), 0) / row_totals[f] if row_totals[f] else 0 for t in tos] for f in froms]
    text = [[f"{counts[(f, t)]:,}" if counts.get((f, t)) else "" for t in tos] for f in froms]
    fig = go.Figure(
        go.Heatmap(
            z=share,
            x=[fmt.label(t) for t in tos],
            y=[fmt.label(f) for f in froms],
            text=text,
            texttemplate="%{text}",
            textfont={"size": 11},
            colorscale=[[0, "#f7fafd"], [0.15, "#cfe0f1"], [0.5, "#6aa2d6"], [1, "#1d4f91"]],
            zmin=0,
            zmax=100,
            xgap=2,
            ygap=2,
            colorbar={"title": {"text": "% of row", "side": "right"}, "ticksuffix": " %", "thickness": 12},
            hovertemplate="from %{y} to %{x}: %{text} customers (%{z:.1f} % of %{y})<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", title_text="previous snapshot", showgrid=False)
    fig.update_xaxes(side="top", title_text=f"{title} now", showgrid=False)
    fig.update_layout(margin={"t": 10})
    return fig


# --- 3. complaints ----------------------------------------------------------------------------------


def complaints(months: list[dt.date], categories: list[str], by_key: dict[tuple[dt.date, str], Row]) -> Figure:
    """Complaints per month stacked by category (largest first), and per 100 active customers below."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    colors = {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(categories)}
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        row_heights=[0.68, 0.32],
        subplot_titles=("Complaints per month, by category", "Complaints per 100 active customers"),
    )
    for category in categories:
        fig.add_trace(
            go.Bar(
                x=months,
                y=[by_key[(m, category)]["complaints"] if (m, category) in by_key else 0 for m in months],
                name=fmt.label(category),
                marker_color=colors[category],
                hovertemplate="%{x|%b %Y}: %{y:,}<extra>" + fmt.label(category) + "</extra>",
            ),
            row=1,
            col=1,
        )
    fig.add_trace(
        go.Scatter(
            x=months,
            y=[fmt.as_float(by_key[(m, "all")]["per_100"]) if (m, "all") in by_key else None for m in months],
            name="per 100 active customers",
            mode="lines+markers",
            line={"color": INK, "width": 2},
            marker={"size": 4},
            showlegend=False,
            hovertemplate="%{x|%b %Y}: %{y:.2f} per 100 active customers<extra></extra>",
        ),
        row=2,
        col=1,
    )
    fig.update_layout(**STACKED)
    fig.update_xaxes(dtick="M3", tickformat="%b %Y")
    return fig


# --- 4. guerrilla metrics ---------------------------------------------------------------------------


def guerrilla(
    labels: list[str],
    quarters: list[dt.date],
    data: dict[str, dict[str, dict[dt.date, Row]]],
    buttons: dict[str, str],
) -> Figure:
    """The eight guerrilla panels over the quarters, one line per group; a button per group type (the
    keys of ``buttons``, in order; the first one shown) shows that type's lines only."""
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=4,
        cols=2,
        shared_xaxes=True,
        vertical_spacing=0.07,
        horizontal_spacing=0.08,
        subplot_titles=[title for _, title, _ in GUERRILLA_PANELS],
    )
    group_types = list(buttons)
    owners: list[str] = []  # the group type of every trace, in order
    for group_type in group_types:
        shown = group_type == group_types[0]
        owners += [group_type] * _guerrilla_lines(fig, labels, quarters, group_type, data[group_type], visible=shown)
    menu = [
        {"label": buttons[g], "method": "restyle", "args": [{"visible": [o == g for o in owners]}]} for g in group_types
    ]
    fig.update_layout(updatemenus=[_button_bar(menu)], legend={"y": 1.045, "yanchor": "bottom"}, margin={"t": 130})
    fig.update_yaxes(rangemode="tozero")
    return fig


def _guerrilla_lines(
    fig: Figure,
    labels: list[str],
    quarters: list[dt.date],
    group_type: str,
    groups: dict[str, dict[dt.date, Row]],
    *,
    visible: bool,
) -> int:
    """Add a line per group of one type to every panel; return how many traces were added."""
    import plotly.graph_objects as go

    colors = {"segment": SEGMENT_COLORS, "value_tier": TIER_COLORS}.get(group_type, {})
    if group_type in ("segment", "value_tier"):
        order = ordered(groups, colors)
    else:
        order = sorted(groups, key=lambda g: (g == "other", g == "unmatched", g))
    for i, group in enumerate(order):
        color = colors.get(group) or (INK if group_type == "all" else PALETTE[i % len(PALETTE)])
        for p, (key, _, show) in enumerate(GUERRILLA_PANELS):
            values = [fmt.as_float(groups[group].get(q, {}).get(key)) for q in quarters]
            line = go.Scatter(
                x=labels,
                y=values,
                name=fmt.label(group) if group_type != "all" else "Whole company",
                legendgroup=f"{group_type}:{group}",
                showlegend=p == 0,
                visible=visible,
                mode="lines+markers",
                line={"color": color, "width": 2},
                marker={"size": 5},
                text=[show(v) for v in values],
                hovertemplate="%{x}: %{text}<extra>" + fmt.label(group) + "</extra>",
            )
            fig.add_trace(line, row=p // 2 + 1, col=p % 2 + 1)
    return len(order) * len(GUERRILLA_PANELS)


def _button_bar(buttons: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "buttons",
        "direction": "right",
        "buttons": buttons,
        "x": 0,
        "xanchor": "left",
        "y": 1.13,
        "yanchor": "bottom",
        "showactive": True,
        "bgcolor": "#f3f4f6",
        "bordercolor": "#d1d5db",
        "font": {"size": 11},
        "pad": {"r": 4, "t": 0, "b": 0, "l": 0},
    }


def reason_bars(
    x: list[str],
    values: Mapping[str, Sequence[float]],
    *,
    hover: str,
    y_title: str,
    customdata: Mapping[str, Sequence[Any]] | None = None,
) -> Figure:
    """Bars over time stacked by stated reason (``values``: reason → a value per x, in legend order);
    the answers without a reason (``not_stated``) in grey. ``hover`` is the hover text before the reason."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, (reason, ys) in enumerate(values.items()):
        fig.add_trace(
            go.Bar(
                x=x,
                y=ys,
                name=fmt.label(reason),
                marker_color=NOT_STATED if reason == "not_stated" else PALETTE[i % len(PALETTE)],
                customdata=None if customdata is None else customdata[reason],
                hovertemplate=hover + "<extra>" + fmt.label(reason) + "</extra>",
            )
        )
    fig.update_layout(**STACKED)
    fig.update_yaxes(title_text=y_title)
    return fig


# --- 5. NPS and CSAT --------------------------------------------------------------------------------


def nps_bars(rows: dict[str, Row]) -> Figure:
    """NPS and CSAT per segment (all customers first), pale where fewer than :data:`MIN_RESPONSES` answered."""
    from plotly.subplots import make_subplots

    order = list(reversed(ordered(rows, ["all", *SEGMENT_COLORS])))
    fig = make_subplots(
        rows=1,
        cols=2,
        shared_yaxes=True,
        horizontal_spacing=0.05,
        subplot_titles=("NPS (−100 to 100)", "CSAT (% satisfied, 4-5 of 5)"),
    )
    for col, (key, count_key) in enumerate((("nps", "nps_responses"), ("csat", "csat_responses")), start=1):
        values = [fmt.as_float(rows[s][key]) for s in order]
        answers = [rows[s][count_key] for s in order]
        bar = _segment_bar(
            order,
            values,
            [INK if s == "all" else SEGMENT_COLORS.get(s, OTHER) for s in order],
            marker_opacity=[1.0 if n >= MIN_RESPONSES else 0.35 for n in answers],
            text=[fmt.number(v, 0) if v is not None else "" for v in values],
            textposition="outside",
            customdata=answers,
            hovertemplate="%{y}: %{x:.1f} from %{customdata:,} answers<extra></extra>",
        )
        fig.add_trace(bar, row=1, col=col)
    fig.update_xaxes(range=[-100, 100], row=1, col=1)
    fig.update_xaxes(range=[0, 100], ticksuffix=" %", row=1, col=2)
    fig.update_layout(margin={"t": 30})
    return fig


def nps_trend(trend: list[Row]) -> Figure:
    """The company's NPS (left axis) and CSAT (right axis, 0-100 %) per quarter."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(specs=[[{"secondary_y": True}]])
    x = [fmt.quarter(r["quarter"]) for r in trend]
    nps = go.Scatter(
        x=x,
        y=[fmt.as_float(r["nps"]) for r in trend],
        name="NPS",
        mode="lines+markers",
        line={"color": "#3b82c4", "width": 2.5},
        cliponaxis=False,
        customdata=[r["nps_responses"] for r in trend],
        hovertemplate="%{x}: NPS %{y:.1f} (%{customdata:,} answers)<extra></extra>",
    )
    csat = go.Scatter(
        x=x,
        y=[fmt.as_float(r["csat"]) for r in trend],
        name="CSAT %",
        mode="lines+markers",
        line={"color": "#e07b39", "width": 2.5, "dash": "dot"},
        cliponaxis=False,
        hovertemplate="%{x}: CSAT %{y:.1f} %<extra></extra>",
    )
    fig.add_trace(nps, secondary_y=False)
    fig.add_trace(csat, secondary_y=True)
    fig.update_yaxes(title_text="NPS", secondary_y=False)
    fig.update_yaxes(
        title_text="CSAT",
        range=[0, 100],
        tickmode="linear",
        tick0=0,
        dtick=20,
        ticksuffix=" %",
        showgrid=False,
        secondary_y=True,
    )
    fig.update_layout(hovermode="x unified", margin={"t": 50})
    return fig


# --- 7. baseline history ----------------------------------------------------------------------------


def kpi_history(
    kpis: list[str], baselines: list[tuple[int, dt.datetime]], by_key: dict[tuple[int, str], Row]
) -> Figure:
    """Every KPI's change against baseline #1, one line per KPI over the baselines."""
    import plotly.graph_objects as go

    x = [f"#{no} · {at:%-d %b %Y}" for no, at in baselines]
    fig = go.Figure()
    for i, kpi in enumerate(kpis):
        name = fmt.kpi_info(kpi)[0]
        values = [fmt.as_float(by_key.get((no, kpi), {}).get("change_pct_vs_first")) for no, _ in baselines]
        fig.add_trace(
            go.Scatter(
                x=x,
                y=values,
                name=name,
                mode="lines+markers",
                line={"color": PALETTE[i % len(PALETTE)], "width": 2},
                marker={"size": 8},
                hovertemplate="%{x}: %{y:+.1f} % vs baseline #1<extra>" + name + "</extra>",
            )
        )
    fig.add_hline(y=0, line={"color": OTHER, "width": 1, "dash": "dot"})
    fig.update_yaxes(title_text="change vs baseline #1", ticksuffix=" %")
    fig.update_xaxes(type="category")
    fig.update_layout(margin={"t": 70})
    return fig
