"""The emulator's accounting models: plausible biochar carbon-removal formulas, as pure functions.

Each function takes the data points of one batch's partition (a month, or a month and a feedstock) and
returns the batch's primary output plus the intermediate calculations, so that a test can recompute a
batch by hand and a report can show where a number came from.

Net Carbon Removal (``net_carbon_removal``), in tonnes of CO2e::

    biochar_t        = Σ runs  biochar_mass_ust × 0.90718474
    carbon_t         = Σ runs  biochar_mass_ust × 0.90718474 × carbon_content_pct / 100
    gross_removal    = carbon_t × PERMANENCE_FACTOR × 44/12
    transport        = Σ deliveries  mass_ust × 0.90718474 × distance_mile × 1.609344 × TRUCK_EF
    electricity      = Σ runs  electricity_kwh × GRID_EF
    net              = gross_removal − transport − electricity

with PERMANENCE_FACTOR = 0.80 (share of biochar carbon persisting 100 years; H/Corg < 0.4 class),
TRUCK_EF = 0.000105 tCO2e per tonne-km (about 105 g per t·km, a loaded diesel truck) and
GRID_EF = 0.000386 tCO2e per kWh (average U.S. grid). Unit conversions: 1 U.S. ton = 0.90718474 t,
1 mile = 1.609344 km, 44/12 = mass ratio CO2 / C.

Each term is rounded to the kilogram (3 decimals) and ``net`` is the sum of the rounded terms, so the
batch's calculations add up exactly to its primary output (the net differs from the unrounded formula by
at most 0.0015 t).

Biochar Produced (``biochar_produced``), in tonnes: ``biochar_t`` above. It runs concurrently with Net
Carbon Removal: one model run writes a batch on each ledger.

Dry Feedstock Delivered (``dry_feedstock``), in tonnes, one batch per feedstock per month::

    dry_t = Σ deliveries of that feedstock  mass_ust × 0.90718474 × (1 − moisture_pct / 100)

Biochar Applied to Soil (``biochar_applied``), in tonnes: the sum of the upstream "Biochar Produced"
batch outputs the user selected (``data_point_ids``), or the custom amounts given in ``batch_amounts``.

A required input with no data point in a partition makes the model fail for that partition, unless the
caller skipped that data point type (``skipped_data_point_type_ids``); a skipped input counts as zero.

Calculations (a batch's ``model_run.calculations``) are the LCA breakdown of its primary output, and only
its terms, so that they add up: the items whose ``lca_role`` is not ``emission`` minus those that are equal
the primary output. For Net Carbon Removal that is ``Gross removal`` (``lca_role: removal``) −
``Transport emissions`` − ``Electricity emissions`` (``lca_role: emission``), all ``ghg: co2e``; the other
models have one calculation (``lca_role: output``, ``ghg: false``: a mass, not a greenhouse gas) equal to
the primary output. Each calculation names the input slugs it reads (``inputs``), so a batch whose
generation skipped an input can say which terms count that input as zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

US_TON_IN_T = 0.90718474
MILE_IN_KM = 1.609344
CO2_PER_C = 44 / 12
PERMANENCE_FACTOR = 0.80
TRUCK_EF_T_PER_TKM = 0.000105
GRID_EF_T_PER_KWH = 0.000386

# Data point type slugs the formulas read.
FEEDSTOCK_MASS = "feedstock-delivery-mass"
TRANSPORT_DISTANCE = "transport-distance"
MOISTURE = "feedstock-moisture-content"
FEEDSTOCK_TYPE = "feedstock-type"
BIOCHAR_MASS = "biochar-mass"
CARBON_CONTENT = "biochar-carbon-content"
ELECTRICITY = "electricity-consumption"
BIOCHAR_PRODUCED_OUTPUT = "biochar-produced"


class ModelInputError(Exception):
    """A partition lacks a required input: the whole generation fails (nothing is half-made)."""


class ModelValueError(Exception):
    """A value is out of its physical range: that one batch is ``failed``, the others are made."""


@dataclass(frozen=True)
class EventValues:
    """One event's data point values, keyed by data point type slug."""

    event_id: str
    event_type: str
    values: Mapping[str, float | str]


@dataclass(frozen=True)
class Calculation:
    """One line of a batch's LCA breakdown. ``ghg`` is ``"co2e"`` for greenhouse-gas terms and ``False`` for
    masses (biochar, carbon, feedstock); ``inputs`` are the data point type slugs the term reads."""

    name: str
    value: float
    unit: str
    lca_role: str = "net"
    category: str = "biochar"
    ghg: str | bool = "co2e"
    inputs: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "value": self.value, "unit": self.unit, "lca_role": self.lca_role,
                "category": self.category, "ghg": self.ghg, "inputs": list(self.inputs)}


@dataclass(frozen=True)
class ModelResult:
    value: float
    calculations: list[Calculation] = field(default_factory=list)


def _number(event: EventValues, slug: str, skipped: set[str], label: str, partition: str) -> float:
    if slug in skipped:
        return 0.0
    value = event.values.get(slug)
    if value is None:
        raise ModelInputError(
            f"no data point for required input '{label}' ({slug}) on event {event.event_id} in {partition}; "
            f"add it in Mangrove, or leave the input out with skipped_data_point_type_ids"
        )
    return float(value)


def _percent(event: EventValues, slug: str, skipped: set[str], label: str, partition: str) -> float:
    value = _number(event, slug, skipped, label, partition)
    if not 0 <= value <= 100:
        raise ModelValueError(
            f"{label} is {value:g} % on event {event.event_id} in {partition}; a percentage must be between 0 and "
            f"100: correct the data point in Mangrove, delete this batch and generate it again"
        )
    return value


def net_carbon_removal(
    deliveries: Sequence[EventValues], runs: Sequence[EventValues], *, partition: str, skipped: Iterable[str] = ()
) -> dict[str, ModelResult]:
    """Net removal and biochar produced for one month: the two outputs of one concurrent model run."""
    skip = set(skipped)
    biochar_t = carbon_t = electricity_kwh = 0.0
    for run in runs:
        mass_t = _number(run, BIOCHAR_MASS, skip, "Mass of Biochar Produced", partition) * US_TON_IN_T
        biochar_t += mass_t
        carbon_t += mass_t * _percent(run, CARBON_CONTENT, skip, "Biochar Organic Carbon Content", partition) / 100
        electricity_kwh += _number(run, ELECTRICITY, skip, "Electricity Consumption", partition)
    tkm = 0.0
    for delivery in deliveries:
        mass_t = _number(delivery, FEEDSTOCK_MASS, skip, "Mass of Feedstock Delivery", partition) * US_TON_IN_T
        tkm += mass_t * _number(delivery, TRANSPORT_DISTANCE, skip, "Transport Distance", partition) * MILE_IN_KM
    gross = round(carbon_t * PERMANENCE_FACTOR * CO2_PER_C, 3)
    transport = round(tkm * TRUCK_EF_T_PER_TKM, 3)
    electricity = round(electricity_kwh * GRID_EF_T_PER_KWH, 3)
    net = round(gross - transport - electricity, 3)  # the rounded terms, so the breakdown adds up exactly
    calcs = [
        Calculation("Gross removal", gross, "t", "removal", "storage", "co2e", (BIOCHAR_MASS, CARBON_CONTENT)),
        Calculation("Transport emissions", transport, "t", "emission", "transport", "co2e",
                    (FEEDSTOCK_MASS, TRANSPORT_DISTANCE)),
        Calculation("Electricity emissions", electricity, "t", "emission", "energy", "co2e", (ELECTRICITY,)),
    ]
    return {
        "net_carbon_removal": ModelResult(net, calcs),
        "biochar_produced": ModelResult(round(biochar_t, 3), [_produced(biochar_t)]),
    }


def _produced(biochar_t: float) -> Calculation:
    return Calculation("Biochar produced", round(biochar_t, 3), "t", "output", "production", False, (BIOCHAR_MASS,))


def biochar_produced(runs: Sequence[EventValues], *, partition: str, skipped: Iterable[str] = ()) -> ModelResult:
    """Biochar produced in one month, for the model that writes only the Biochar Produced ledger."""
    skip = set(skipped)
    biochar_t = sum(
        _number(run, BIOCHAR_MASS, skip, "Mass of Biochar Produced", partition) * US_TON_IN_T for run in runs
    )
    return ModelResult(round(biochar_t, 3), [_produced(biochar_t)])


def dry_feedstock(deliveries: Sequence[EventValues], *, partition: str, skipped: Iterable[str] = ()) -> ModelResult:
    """Dry mass of one feedstock delivered in one month."""
    skip = set(skipped)
    dry = 0.0
    for delivery in deliveries:
        mass_t = _number(delivery, FEEDSTOCK_MASS, skip, "Mass of Feedstock Delivery", partition) * US_TON_IN_T
        moisture = _percent(delivery, MOISTURE, skip, "Feedstock Moisture Content", partition)
        dry += mass_t * (1 - moisture / 100)
    return ModelResult(round(dry, 3), [Calculation("Dry feedstock", round(dry, 3), "t", "output", "feedstock", False,
                                                   (FEEDSTOCK_MASS, MOISTURE))])


def biochar_applied(amounts: Iterable[float]) -> ModelResult:
    """Biochar applied to soil: the selected upstream amounts, summed."""
    total = round(sum(amounts), 3)
    return ModelResult(total, [Calculation("Biochar applied", total, "t", "output", "application", False,
                                           (BIOCHAR_PRODUCED_OUTPUT,))])


def calculation_templates() -> dict[str, Calculation]:
    """Every calculation the models make, by name (values zero): what the store fills in, by name, for a
    calculation an earlier emulator saved without ``category``, ``ghg`` or ``inputs``."""
    results = [*net_carbon_removal([], [], partition="").values(), dry_feedstock([], partition=""),
               biochar_applied([])]
    return {calc.name: calc for result in results for calc in result.calculations}
