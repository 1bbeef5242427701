"""plots: what the figures show is read back from the artists (bars, lines, texts) and compared with the frame.

Frames are built with ``frames.batches_frame`` from API-shaped items, so they have the real schema; one
test draws the emulator's seeded batches.
"""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.container import BarContainer
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Text

import mangrove_nb
from mangrove_nb.frames import BATCHES_SCHEMA, batches_frame, empty_frame
from mangrove_nb.plots import plot_batches, plot_quarter_summary

REMOVAL, BIOCHAR, FEED, CREDITS = "lgr_removal", "lgr_biochar", "lgr_feed", "lgr_credits"
HOSTILE = "$x^2$ <img src=x onerror=alert(1)>"


def batch(ledger: str, month: str, value: float | None, *, name: str = "Net Carbon Removal", unit: str = "t",
          state: str = "complete", feedstock: str | None = None, ident: str | None = None) -> dict[str, Any]:
    """One GET /batches item covering a whole month (``"2024-03"``), in UTC."""
    start = pd.Timestamp(f"{month}-01T00:00:00Z")
    end = start + pd.offsets.MonthBegin(1) - pd.Timedelta(seconds=1)
    item: dict[str, Any] = {
        "id": ident or f"bat_{ledger}_{month}_{feedstock or ''}",
        "start_time": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end_time": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "state": state,
        "ledger_id": ledger,
        "primary_output": {"name": name, "unit": unit, "value": value},
    }
    if feedstock is not None:
        item["feedstocks"] = [feedstock]
    return item


def frame_of(*items: dict[str, Any]) -> pd.DataFrame:
    return batches_frame(list(items))


def bar_containers(ax: Axes) -> list[BarContainer]:
    return [c for c in ax.containers if isinstance(c, BarContainer)]


def twin_of(ax: Axes) -> Axes:
    twins = [other for other in ax.figure.axes if other is not ax and ax.get_shared_x_axes().joined(ax, other)]
    assert len(twins) == 1, "expected one secondary axes for the cumulative line"
    return twins[0]


def cumulative_lines(ax: Axes) -> dict[str, Line2D]:
    return {line.get_gid(): line for line in twin_of(ax).get_lines() if str(line.get_gid()).startswith("cumulative")}


def legend_texts(ax: Axes) -> list[str]:
    legend = ax.get_legend()
    assert legend is not None
    return [text.get_text() for text in legend.get_texts()]


def all_texts(ax: Axes) -> list[Text]:
    return [t for t in ax.figure.findobj(Text) if t.get_text()]


def drawn(ax: Axes) -> Axes:
    ax.figure.draw_without_rendering()  # lays out ticks and labels as a save would
    return ax


def tick_labels(ax: Axes) -> list[str]:
    low, high = ax.get_xlim()
    return [t.get_text() for t in drawn(ax).xaxis.get_majorticklabels()
            if t.get_text() and low <= t.get_position()[0] <= high]


def two_ledgers() -> pd.DataFrame:
    return frame_of(
        batch(REMOVAL, "2024-01", 76.44), batch(REMOVAL, "2024-02", 84.275), batch(REMOVAL, "2024-03", 71.29),
        batch(BIOCHAR, "2024-01", 36.741, name="Biochar Produced"),
        batch(BIOCHAR, "2024-02", 42.057, name="Biochar Produced"),
        batch(BIOCHAR, "2024-03", 34.863, name="Biochar Produced"),
    )


def feedstock_frame() -> pd.DataFrame:
    name = "Dry Feedstock Delivered"
    return frame_of(*(
        batch(FEED, month, value, name=name, feedstock=stock)
        for month, values in (("2024-01", (43.8, 39.2, 37.7)), ("2024-02", (13.6, 36.4, 63.0)))
        for stock, value in zip(("Corn stover", "Almond shells", "Pine residue"), values, strict=True)
    ))


# --- plot_batches ---------------------------------------------------------------------------------------


def test_bar_heights_equal_the_frame_values_and_span_each_batch() -> None:
    frame = two_ledgers()
    ax = plot_batches(frame)
    containers = {c.get_label(): c for c in bar_containers(ax)}
    assert set(containers) == {"Net Carbon Removal", "Biochar Produced"}
    for label, ledger in (("Net Carbon Removal", REMOVAL), ("Biochar Produced", BIOCHAR)):
        mine = frame[frame["ledger_id"] == ledger]
        heights = [patch.get_height() for patch in containers[label].patches]
        assert heights == pytest.approx(mine["output_value"].astype(float).tolist())
        for patch, start, end in zip(containers[label].patches, mine["start_time"], mine["end_time"], strict=True):
            # each bar sits inside its batch's period (UTC) and covers a good part of it
            assert mdates.date2num(start) <= patch.get_x() < patch.get_x() + patch.get_width() <= \
                mdates.date2num(end) + 1e-4
            assert patch.get_width() > 0.3 * (end - start).days


def test_ledgers_are_side_by_side_and_feedstocks_stacked() -> None:
    ledgers = plot_batches(two_ledgers())
    first, second = (c.patches[0] for c in bar_containers(ledgers))
    assert first.get_y() == second.get_y() == 0
    assert first.get_x() + first.get_width() <= second.get_x() + 1e-9 or second.get_x() + second.get_width() <= \
        first.get_x() + 1e-9

    stocks = plot_batches(feedstock_frame())
    january = [c.patches[0] for c in bar_containers(stocks)]
    tops = sorted((p.get_y(), p.get_y() + p.get_height()) for p in january)
    assert tops[0][0] == 0
    assert [bottom for bottom, _ in tops[1:]] == pytest.approx([top for _, top in tops[:-1]])
    assert tops[-1][1] == pytest.approx(43.8 + 39.2 + 37.7)
    side = plot_batches(feedstock_frame(), stacked=False)
    assert all(c.patches[0].get_y() == 0 for c in bar_containers(side))


def test_labels_carry_units_and_say_utc() -> None:
    ax = plot_batches(two_ledgers())
    assert ax.get_ylabel() == "Output per batch (t)"
    assert twin_of(ax).get_ylabel() == "Cumulative output (t)"
    assert "UTC" in ax.get_xlabel()

    mixed = pd.concat([two_ledgers(), frame_of(batch(CREDITS, "2024-01", 12.0, name="Credits Issued",
                                                     unit="tCO2e"))], ignore_index=True)
    ax = plot_batches(mixed)
    assert ax.get_ylabel() == "Output per batch (mixed units: t, tCO2e)"
    assert twin_of(ax).get_ylabel() == "Cumulative output (mixed units: t, tCO2e)"
    assert "Credits Issued (tCO2e)" in legend_texts(ax)
    assert "Net Carbon Removal (t)" in legend_texts(ax)


def test_an_empty_frame_draws_the_message_for_its_period() -> None:
    ax = plot_batches(empty_frame(BATCHES_SCHEMA), period="2025Q1")
    messages = [t for t in ax.texts if t.get_text() == "No batches in 2025Q1"]
    assert len(messages) == 1
    assert messages[0].get_position() == (0.5, 0.5) and messages[0].get_transform() == ax.transAxes
    assert messages[0].get_ha() == "center"
    assert ax.get_xlim() == pytest.approx((mdates.date2num(datetime(2025, 1, 1, tzinfo=UTC)),
                                           mdates.date2num(datetime(2025, 4, 1, tzinfo=UTC))))
    assert bar_containers(ax) == []
    assert tick_labels(ax)[:2] == ["Jan 2025", "Feb 2025"]

    # Without period=, the period the frame was fetched for (frame.attrs) is used.
    fetched = empty_frame(BATCHES_SCHEMA, attrs={"period": "2024-05", "period_start": "2024-05-01T00:00:00+00:00",
                                                  "period_end": "2024-05-31T23:59:59+00:00"})
    assert [t.get_text() for t in plot_batches(fetched).texts] == ["No batches in 2024-05"]
    assert [t.get_text() for t in plot_batches(empty_frame(BATCHES_SCHEMA)).texts] == ["No batches"]


def test_a_feedstock_frame_gives_one_bar_group_per_feedstock() -> None:
    frame = feedstock_frame()
    ax = plot_batches(frame)  # by="auto": the feedstock column is filled and there is one ledger
    containers = {c.get_label(): c for c in bar_containers(ax)}
    assert sorted(containers) == ["Almond shells", "Corn stover", "Pine residue"]
    for stock, container in containers.items():
        expected = frame.loc[frame["feedstock"] == stock, "output_value"].astype(float).tolist()
        assert [p.get_height() for p in container.patches] == pytest.approx(expected)
    assert legend_texts(ax) == ["Almond shells", "Corn stover", "Pine residue", "Cumulative, all feedstocks"]
    total = cumulative_lines(ax)["cumulative:__total__"]
    assert total.get_ydata()[-1] == pytest.approx(frame["output_value"].astype(float).sum())
    assert len(bar_containers(plot_batches(frame, by="ledger"))) == 1
    with pytest.raises(ValueError, match="one ledger"):
        plot_batches(pd.concat([frame, two_ledgers()], ignore_index=True), by="feedstock")


def test_several_ledgers_on_one_figure_give_one_legend_entry_each() -> None:
    frame = pd.concat([two_ledgers(), frame_of(batch("lgr_other", "2024-02", 5.0, name="Biochar Applied to Soil"))],
                      ignore_index=True)
    ax = plot_batches(frame)
    assert legend_texts(ax) == ["Biochar Applied to Soil", "Biochar Produced", "Net Carbon Removal"]
    assert len(cumulative_lines(ax)) == 3
    assert len(ax.figure.axes) == 2  # one figure: the bars' axes and the cumulative lines' twin

    renamed = plot_batches(frame, labels={REMOVAL: "Removal", BIOCHAR: "Biochar"})
    assert legend_texts(renamed) == ["Removal", "Biochar", "Biochar Applied to Soil"]
    # A list of frames (one per ledger) is the same comparison.
    assert legend_texts(plot_batches([two_ledgers(), frame_of(batch("lgr_other", "2024-02", 5.0,
                                                                    name="Biochar Applied to Soil"))])) == \
        legend_texts(ax)


def test_failed_batches_are_distinct_and_left_out_of_the_cumulative_line() -> None:
    frame = frame_of(
        batch(REMOVAL, "2024-01", 10.0), batch(REMOVAL, "2024-02", 50.0, state="failed"),
        batch(REMOVAL, "2024-03", 20.0), batch(REMOVAL, "2024-04", 7.0, state="pending"),
    )
    ax = plot_batches(frame)
    (container,) = bar_containers(ax)
    patches = container.patches
    assert [p.get_height() for p in patches] == pytest.approx([10.0, 50.0, 20.0, 7.0])
    assert [p.get_hatch() for p in patches] == [None, "////", None, None]
    assert patches[1].get_facecolor() != patches[0].get_facecolor()
    assert patches[3].get_alpha() == pytest.approx(0.4)  # pending: faded, not counted either
    markers = [line for line in ax.get_lines() if line.get_gid() == "failed-marker"]
    assert len(markers) == 1 and list(markers[0].get_ydata()) == [50.0]
    line = cumulative_lines(ax)[f"cumulative:{REMOVAL}"]
    assert list(line.get_ydata()) == pytest.approx([0.0, 10.0, 30.0])
    assert "Failed batch (not counted)" in legend_texts(ax)
    assert "Not complete (not counted)" in legend_texts(ax)
    # A failure reported with a zero output (as the emulator does) still gets its mark.
    zero = plot_batches(frame_of(batch(REMOVAL, "2024-01", 0.0, state="failed"), batch(REMOVAL, "2024-02", 3.0)))
    assert [line.get_ydata()[0] for line in zero.get_lines() if line.get_gid() == "failed-marker"] == [0.0]
    assert list(cumulative_lines(zero)[f"cumulative:{REMOVAL}"].get_ydata()) == pytest.approx([0.0, 3.0])


def test_cumulative_false_draws_no_line_and_no_twin() -> None:
    ax = plot_batches(two_ledgers(), cumulative=False)
    assert len(ax.figure.axes) == 1
    assert legend_texts(ax) == ["Biochar Produced", "Net Carbon Removal"]


def test_period_sets_the_x_limits_and_ticks_read_as_utc_months() -> None:
    ax = plot_batches(two_ledgers(), period="2024")
    assert ax.get_xlim() == pytest.approx((mdates.date2num(datetime(2024, 1, 1, tzinfo=UTC)),
                                           mdates.date2num(datetime(2025, 1, 1, tzinfo=UTC))))
    labels = tick_labels(ax)
    assert len(labels) == 12
    assert labels[0] == "Jan\n2024" and labels[1:3] == ["Feb", "Mar"] and labels[-1] == "Dec"
    wide = plot_batches(two_ledgers(), period="2024Q1")
    assert tick_labels(wide) == ["Jan 2024", "Feb 2024", "Mar 2024"]
    assert "2024Q1" in wide.get_title()


def test_utc_timestamps_land_on_their_utc_month_whatever_the_display_timezone() -> None:
    frame = frame_of(batch(REMOVAL, "2024-02", 5.0), batch(REMOVAL, "2024-11", 9.0))
    # The same instants seen from California: Feb 1 00:00 UTC is Jan 31 locally.
    frame["start_time"] = frame["start_time"].dt.tz_convert("America/Los_Angeles")
    frame["end_time"] = frame["end_time"].dt.tz_convert("America/Los_Angeles")
    with matplotlib.rc_context({"timezone": "America/Los_Angeles"}):
        ax = plot_batches(frame, period="2024-02")
        (container,) = bar_containers(ax)
        february = mdates.date2num(datetime(2024, 2, 1, tzinfo=UTC))
        assert february <= container.patches[0].get_x() < february + 29
        assert tick_labels(ax)[0] == "01 Feb 2024"
        summary = plot_quarter_summary(frame, "2024Q4")
    heights = [p.get_height() for p in bar_containers(summary)[0].patches]
    assert heights == pytest.approx([0.0, 9.0, 0.0])  # November, not October


# --- plot_quarter_summary -------------------------------------------------------------------------------


def quarter_frame() -> pd.DataFrame:
    return frame_of(
        batch(REMOVAL, "2024-10", 101.274), batch(REMOVAL, "2024-10", 12.5, ident="bat_extra"),
        batch(REMOVAL, "2024-10", 40.0, state="failed", ident="bat_failed"),
        batch(REMOVAL, "2024-12", 55.699),  # November is missing
        batch(REMOVAL, "2025-01", 999.0),  # outside the quarter
    )


def test_quarter_summary_monthly_totals_and_total_equal_the_frame_sums() -> None:
    frame = quarter_frame()
    ax = plot_quarter_summary(frame, "2024Q4")
    (container,) = bar_containers(ax)
    assert [p.get_height() for p in container.patches] == pytest.approx([101.274 + 12.5, 0.0, 55.699])
    assert [p.get_gid() for p in container.patches] == ["month", "missing", "month"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Oct 2024", "Nov 2024", "Dec 2024"]
    missing = [t for t in ax.texts if t.get_gid() == "missing-month"]
    assert [t.get_text() for t in missing] == ["no batches"]
    assert missing[0].xy[0] == pytest.approx(container.patches[1].get_x() + container.patches[1].get_width() / 2,
                                             abs=0.01)
    (total,) = [t for t in ax.texts if t.get_gid() == "period-total"]
    expected = 101.274 + 12.5 + 55.699
    assert total.get_text() == f"2024Q4 total: {expected:,.3f} t (2 of 3 months)"  # November is missing
    number = float(re.search(r"total: ([\d,.]+)", total.get_text()).group(1).replace(",", ""))
    assert number == pytest.approx(expected, abs=0.0005)  # three decimals, as the report's tables
    value_labels = [t.get_text() for t in ax.texts if t.get_text().startswith(("113", "55"))]
    assert value_labels == ["113.774 t\n1 failed, not counted", "55.699 t"]
    assert ax.get_ylabel() == "Monthly total (t)"
    assert "UTC" in ax.get_xlabel()


def test_quarter_summary_marks_a_month_with_only_failed_batches_and_an_empty_quarter() -> None:
    frame = frame_of(batch(REMOVAL, "2024-01", 3.0, state="failed"), batch(REMOVAL, "2024-02", 4.0))
    ax = plot_quarter_summary(frame, "2024Q1")
    assert [t.get_text() for t in ax.texts if t.get_gid() == "missing-month"] == ["no complete\nbatches",
                                                                                  "no batches"]
    empty = plot_quarter_summary(empty_frame(BATCHES_SCHEMA), "2024Q1")
    assert [p.get_height() for p in bar_containers(empty)[0].patches] == [0.0, 0.0, 0.0]
    assert [t.get_text() for t in empty.texts if t.get_gid() == "missing-month"] == ["no batches"] * 3
    assert [t.get_text() for t in empty.texts if t.get_gid() == "period-total"] == ["2024Q1 total: 0.000"]


def test_quarter_summary_of_two_ledgers_totals_each() -> None:
    frame = frame_of(batch(REMOVAL, "2024-01", 3.0), batch(BIOCHAR, "2024-02", 4.0, name="Biochar Produced"),
                     batch(BIOCHAR, "2024-03", 1.5, name="Biochar Produced"))
    ax = plot_quarter_summary(frame, "2024Q1")
    heights = {c.get_label(): [p.get_height() for p in c.patches] for c in bar_containers(ax)}
    assert heights == {"Biochar Produced": [0.0, 4.0, 1.5], "Net Carbon Removal": [3.0, 0.0, 0.0]}
    (total,) = [t for t in ax.texts if t.get_gid() == "period-total"]
    assert total.get_text() == ("2024Q1 totals:\nBiochar Produced: 5.500 t (2 of 3 months)\n"
                                "Net Carbon Removal: 3.000 t (1 of 3 months)")
    assert legend_texts(ax) == ["Biochar Produced", "Net Carbon Removal"]


def test_quarter_summary_marks_a_doubtful_month_and_a_month_without_a_value() -> None:
    """A month the caller marks (an overstated batch, a partition generated twice) gets ⚠ on its bar label and on
    the total, with the reason under it; a complete batch without an output value is "no value", never a 0 bar."""
    frame = frame_of(batch(REMOVAL, "2024-10", 10.0), batch(REMOVAL, "2024-11", 20.0),
                     batch(REMOVAL, "2024-12", 5.0))
    frame.loc[2, "output_value"] = pd.NA
    ax = plot_quarter_summary(frame, "2024Q4", marks={"2024-11": "an input was skipped, so it may be overstated"})
    (container,) = bar_containers(ax)
    assert [p.get_gid() for p in container.patches] == ["month", "month", "no-value"]
    assert [t.get_text() for t in ax.texts if t.get_gid() == "missing-month"] == ["no value"]
    labels = [t.get_text() for t in ax.texts if t.get_text().startswith(("10.00", "20.00", "0.00"))]
    assert labels == ["10.000 t", "20.000 t \u26a0"]
    (total,) = [t for t in ax.texts if t.get_gid() == "period-total"]
    assert total.get_text() == ("2024Q4 total: 30.000 t \u26a0 (no value: 2024-12)\n"
                                "\u26a0 2024-11: an input was skipped, so it may be overstated")



def test_a_years_monthly_totals_have_short_month_names_and_no_label_overlaps_another() -> None:
    """An annual report's chart ran "Jan 2024" into "Feb 2024" and a month's "1 failed, not counted" into its
    neighbours' values: now months are "Jan".."Dec" under "Month of 2024 (UTC)", the failed note wraps, and no two
    labels (ticks, values, the total's box) overlap on an axes as wide as the report draws it."""
    items = [batch(REMOVAL, f"2024-{m:02d}", 100.0 + m + 0.123) for m in range(1, 13)]
    items.append(batch(REMOVAL, "2024-10", 9.0, state="failed", ident="bat_failed"))
    figure = Figure(figsize=(11, 3.9))
    figure.subplots_adjust(left=0.8 / 11, right=1 - 0.25 / 11, bottom=0.65 / 3.9, top=1 - 0.85 / 3.9)
    ax = plot_quarter_summary(frame_of(*items), "2024", ax=figure.add_subplot())
    assert tick_labels(ax) == ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    assert ax.get_xlabel() == "Month of 2024 (UTC)"
    values = [t for t in ax.texts if re.match(r"1\d\d\.\d{3} t", t.get_text())]
    assert len(values) == 12 and values[9].get_text() == "110.123 t\n1 failed,\nnot counted"
    renderer = FigureCanvasAgg(figure).get_renderer()
    boxes = [t.get_window_extent(renderer) for t in [*values, *ax.xaxis.get_majorticklabels(),
                                                     *[t for t in ax.texts if t.get_gid() == "period-total"]]
             if t.get_text()]
    overlapping = [(a, b) for n, a in enumerate(boxes) for b in boxes[n + 1:] if a.overlaps(b)]
    assert overlapping == []

# --- text, global state ---------------------------------------------------------------------------------


def test_api_text_is_drawn_literally_never_as_mathtext() -> None:
    frame = frame_of(batch(REMOVAL, "2024-01", 1.0, name=HOSTILE, unit="$t$", feedstock=HOSTILE),
                     batch(REMOVAL, "2024-02", 2.0, name=HOSTILE, unit="$t$", feedstock="$"))
    axes = [plot_batches(frame), plot_batches(frame, by="ledger", title=HOSTILE),
            plot_batches(frame.iloc[:0], period="2024", title=HOSTILE), plot_quarter_summary(frame, "2024Q1"),
            plot_batches(frame, labels={REMOVAL: HOSTILE}, by="ledger")]
    for ax in axes:
        hostile = [t for t in all_texts(ax) if "x^2" in t.get_text() or "$" in t.get_text()]
        assert hostile, "the API text should appear somewhere"
        for text in hostile:
            shown, is_math = text._preprocess_math(text.get_text())
            assert not is_math and not text.get_usetex(), text.get_text()
            assert "\\" not in shown  # the escape is consumed: the reader sees the API's text
        rendered = {t._preprocess_math(t.get_text())[0] for t in hostile}
        assert any(HOSTILE in shown for shown in rendered) or any("$t$" in shown for shown in rendered)
        ax.figure.savefig(io.BytesIO(), format="png")  # renders without a mathtext error
    assert "Output per batch ($t$)" in {t._preprocess_math(t.get_text())[0] for t in all_texts(axes[1])}
    assert HOSTILE in {t._preprocess_math(t.get_text())[0] for t in all_texts(axes[0])}


def test_a_lone_dollar_and_usetex_on_still_render() -> None:
    frame = frame_of(batch(REMOVAL, "2024-01", 1.0, name="Cost $ per t_1 50% & more"))
    before = dict(matplotlib.rcParams)
    ax = plot_batches(frame)
    ax.figure.savefig(io.BytesIO(), format="png")
    with matplotlib.rc_context({"text.usetex": True}):  # a notebook that turned LaTeX on
        for ax in (plot_batches(frame), plot_quarter_summary(frame, "2024Q1")):
            # Everything drawn from API text opts out of LaTeX (tick labels are matplotlib's own numbers).
            ours = [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.texts, *ax.get_legend().get_texts()] \
                if ax.get_legend() else [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
            assert any("Cost" in t.get_text() for t in ours)
            assert all(not t.get_usetex() for t in ours if t.get_text())
    assert dict(matplotlib.rcParams) == before


def test_no_global_state_changes_and_no_pyplot_figures() -> None:
    plt.close("all")
    with matplotlib.rc_context():  # restores whatever the session had, after a fresh start from the defaults
        matplotlib.rcdefaults()
        before = dict(matplotlib.rcParams)
        ax = plot_batches(two_ledgers(), period="2024")
        summary = plot_quarter_summary(two_ledgers(), "2024Q1")
        empty = plot_batches(empty_frame(BATCHES_SCHEMA), period="2024")
        for result in (ax, summary, empty):
            assert isinstance(result, Axes) and isinstance(result.figure, Figure)
            result.figure.savefig(io.BytesIO(), format="png")
        changed = {key for key, value in matplotlib.rcParams.items() if before[key] != value}
        assert changed == set()
    assert plt.get_fignums() == []
    # Given an ax, the plot goes there and nothing else is created.
    figure = Figure()
    target = figure.add_subplot()
    assert plot_batches(two_ledgers(), ax=target) is target
    assert plot_quarter_summary(two_ledgers(), "2024Q1", ax=figure.add_subplot(212)).figure is figure
    assert plt.get_fignums() == []


def test_bad_input_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="output_value"):
        plot_batches(pd.DataFrame({"start_time": []}))
    with pytest.raises(TypeError, match="batches DataFrame"):
        plot_batches({"start_time": []})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="by must be"):
        plot_batches(two_ledgers(), by="month")  # type: ignore[arg-type]
    with pytest.raises(mangrove_nb.PeriodError):
        plot_quarter_summary(two_ledgers(), "2024Q5")


# --- real data ------------------------------------------------------------------------------------------


def test_the_emulators_seeded_batches(emulator: Any) -> None:
    client = mangrove_nb.connect(emulator.token, emulator.url, show_progress=False)
    ids = {row.name: row.id for row in client.ledgers().itertuples()}

    feed = client.batches(ids["Dry Feedstock Delivered"], "2024")
    ax = plot_batches(feed)  # the period comes from the frame's provenance
    containers = bar_containers(ax)
    assert sorted(c.get_label() for c in containers) == sorted(set(feed["feedstock"].dropna()))
    assert sum(len(c.patches) for c in containers) == len(feed)
    heights = sorted(p.get_height() for c in containers for p in c.patches)
    assert heights == pytest.approx(sorted(feed["output_value"].astype(float)))
    failed = [p for c in containers for p in c.patches if p.get_gid() == "failed"]
    assert len(failed) == (feed["state"] == "failed").sum() == 1
    complete = feed.loc[feed["state"] == "complete", "output_value"].astype(float).sum()
    assert cumulative_lines(ax)["cumulative:__total__"].get_ydata()[-1] == pytest.approx(complete)
    assert "2024" in ax.get_title() and ax.get_ylabel() == "Output per batch (t)"

    both = client.batches([ids["Net Carbon Removal"], ids["Biochar Produced"]], "2024")
    ax = plot_batches(both)
    assert legend_texts(ax) == ["Biochar Produced", "Net Carbon Removal"]
    lines = cumulative_lines(ax)
    for name in ("Net Carbon Removal", "Biochar Produced"):
        values = both.loc[both["ledger_id"] == ids[name], "output_value"].astype(float)
        assert lines[f"cumulative:{ids[name]}"].get_ydata()[-1] == pytest.approx(values.sum())

    quarter = client.batches(ids["Net Carbon Removal"], "2024Q4")
    summary = plot_quarter_summary(quarter, "2024Q4")
    monthly = quarter.groupby(quarter["start_time"].dt.month)["output_value"].sum().astype(float)
    assert [p.get_height() for p in bar_containers(summary)[0].patches] == pytest.approx(
        [monthly[10], monthly[11], monthly[12]])
    (total,) = [t for t in summary.texts if t.get_gid() == "period-total"]
    assert total.get_text() == f"2024Q4 total: {monthly.sum():,.3f} t"

    assert [t.get_text() for t in plot_batches(client.batches(ids["Credits Issued"], "2024")).texts] == \
        ["No batches in 2024"]
    assert np.isfinite(ax.get_xlim()).all()
