"""Fit the jemas-3 day generator's parameters on real 2023 data.

    python scripts/calibrate.py --data DIR [--out PARAMS.json]

DIR holds prices/, weather/ and carbon/ with {pjm,caiso,ercot,nyiso}_2023.csv and
traces/azure_llm_inference_2023_conv.csv, in the formats of optsched/data/readers.py (the
public sources are named in the data card, optsched/scenario/defaults/jemas3.md).

The package keeps only the fitted numbers (the JSON), never the data. Model, per region:
- price: hourly p = L_d * (shape_s[h] + e_h) on local hours, with L_d the daily mean
  (lognormal per season s), e an AR(1) per season, plus spikes (hours above 3x the
  day's expected price and above $100/MWh): their rate per season, hour-of-day
  weights and the distribution of spike ratios (quantiles);
- cloud cover: daily mean per month (mean, sd -> Beta) and an hourly AR(1) deviation;
- carbon intensity: hourly shape per season and a lognormal daily level.
Arrival burstiness: the Azure LLM inference trace's per-slot counts against their
local trend (lognormal sigma and lag-1 autocorrelation of the log ratio).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from optsched.data.readers import (
    counts_per_slot,
    read_carbon,
    read_prices,
    read_trace,
    read_weather,
)
from optsched.errors import OptschedError
from optsched.io import atomic_write_text

REGIONS = ("pjm", "caiso", "ercot", "nyiso")
SEASON_OF_MONTH = {12: "DJF", 1: "DJF", 2: "DJF", 3: "MAM", 4: "MAM", 5: "MAM",
                   6: "JJA", 7: "JJA", 8: "JJA", 9: "SON", 10: "SON", 11: "SON"}
SPIKE_RATIO, SPIKE_MIN = 3.0, 100.0


def _ar1(resid: np.ndarray) -> tuple[float, float]:
    """Lag-1 autocorrelation and stationary sd of a residual series."""
    r = resid[np.isfinite(resid)]
    if len(r) < 3:
        return 0.0, 0.0
    phi = float(np.corrcoef(r[:-1], r[1:])[0, 1])
    return float(np.clip(phi, 0.0, 0.99)), float(np.std(r))


def _local_days(series: pd.Series, tz: str) -> pd.DataFrame:
    """Hourly series -> one row per local day (complete days only), 24 columns."""
    s = series.tz_convert(tz)
    frame = pd.DataFrame({"v": s.to_numpy(), "day": s.index.date, "hour": s.index.hour})
    wide = frame.pivot_table(index="day", columns="hour", values="v", aggfunc="mean")
    return wide.dropna()


def fit_prices(prices: pd.Series, tz: str) -> dict:
    days = _local_days(prices, tz)
    level = days.mean(axis=1).clip(lower=5.0)
    ratio = days.div(level, axis=0)
    season = pd.Series([SEASON_OF_MONTH[d.month] for d in days.index], index=days.index)
    out: dict = {"seasons": {}}
    spike_hours = np.zeros(24)
    spike_ratios: list[float] = []
    for s in ("DJF", "MAM", "JJA", "SON"):
        r = ratio[season == s]
        shape = r.median(axis=0)
        rel = r / shape.clip(lower=0.05)
        spikes = (rel > SPIKE_RATIO) & (days[season == s] > SPIKE_MIN)
        spike_hours += spikes.sum(axis=0).to_numpy()
        spike_ratios += rel.where(spikes).stack().dropna().tolist()
        resid = (r - shape).where(~spikes).to_numpy().ravel()
        phi, sigma = _ar1(resid)
        lv = np.log(level[season == s])
        out["seasons"][s] = {
            "shape": [round(float(v), 4) for v in shape],
            "log_level_mu": round(float(lv.mean()), 4),
            "log_level_sigma": round(float(lv.std()), 4),
            "ar_phi": round(phi, 4), "ar_sigma": round(sigma, 4),
            "spike_prob": round(float(spikes.to_numpy().mean()), 6),
        }
    weight = spike_hours / spike_hours.sum() if spike_hours.sum() else np.full(24, 1 / 24)
    out["spike_hour_weight"] = [round(float(w), 4) for w in weight]
    qs = np.quantile(spike_ratios, np.linspace(0, 1, 11)) if spike_ratios else [SPIKE_RATIO]
    out["spike_ratio_quantiles"] = [round(float(q), 3) for q in qs]
    return out


def fit_cloud(weather: pd.DataFrame) -> dict:
    cc = weather["cloudcover_pct"].astype(float)
    daily = cc.groupby(cc.index.date).mean()
    months = pd.Series([d.month for d in daily.index], index=daily.index)
    dev = cc - cc.groupby(cc.index.date).transform("mean")
    phi, sigma = _ar1(dev.to_numpy())
    return {
        "months": [{"mean": round(float(daily[months == m].mean()), 2),
                    "sd": round(float(daily[months == m].std()), 2)} for m in range(1, 13)],
        "ar_phi": round(phi, 4), "ar_sigma": round(sigma, 3),
    }


def fit_carbon(ci: pd.Series, tz: str) -> dict:
    days = _local_days(ci, tz)
    season = pd.Series([SEASON_OF_MONTH[d.month] for d in days.index], index=days.index)
    out = {}
    for s in ("DJF", "MAM", "JJA", "SON"):
        d = days[season == s]
        level = d.mean(axis=1)
        out[s] = {"level": round(float(level.mean()), 2),
                  "log_sigma": round(float(np.log(level).std()), 4),
                  "shape": [round(float(v), 4) for v in (d.div(level, axis=0)).mean(axis=0)]}
    return out


def fit_burstiness(trace: pd.Series, slot_minutes: int = 5) -> dict:
    """Per-minute counts against a centred 15-minute trend; rescaled to the slot length."""
    counts = counts_per_slot(trace, 1.0)[1:-1]     # drop partial first/last minutes
    trend = pd.Series(counts).rolling(15, center=True, min_periods=5).mean().to_numpy()
    log_ratio = np.log(counts / trend)
    phi, sigma_1min = _ar1(log_ratio)
    # Poisson noise at per-minute level is part of the ratio's spread; remove it.
    extra = max(sigma_1min**2 - 1.0 / counts.mean(), 0.0)
    # An AR(1) at one-minute resolution averaged over a slot of m minutes.
    m = slot_minutes
    var_factor = (m + 2 * sum((m - j) * phi**j for j in range(1, m))) / m**2
    return {"burst_sigma": round(float(np.sqrt(extra * var_factor)), 4),
            "burst_phi": round(float(phi**m), 4),
            "minutes_of_trace": len(counts)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="folder of the real data (see above)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] /
                                         "optsched/scenario/defaults/jemas3_params.json"))
    args = ap.parse_args()
    data = Path(args.data)
    if not data.is_dir():
        _fail(f"--data: no such folder, got {str(data)!r}")
    try:
        fit(data, Path(args.out))
    except OptschedError as exc:
        _fail(str(exc))


def _fail(message: str) -> None:
    """A one-line error and exit status 2, as the optsched CLI does for bad input."""
    print(f"calibrate.py: {message}", file=sys.stderr)
    sys.exit(2)


def fit(data: Path, out: Path) -> None:
    """Fit every region and the arrival burstiness; write the parameters atomically."""
    regions = {}
    for r in REGIONS:
        loc, weather = read_weather(data / f"weather/{r}_2023.csv")
        regions[r] = {
            "location": loc.__dict__,
            "price": fit_prices(read_prices(data / f"prices/{r}_2023.csv"), loc.timezone),
            "cloud": fit_cloud(weather),
            "carbon": fit_carbon(read_carbon(data / f"carbon/{r}_2023.csv"), loc.timezone),
        }
    conv = read_trace(data / "traces/azure_llm_inference_2023_conv.csv")
    params = {
        "source": "Fitted by scripts/calibrate.py on public 2023 data (data card jemas3.md): "
                  "hourly prices (Electricity Maps/GridStatus via HPE sustain-cluster), "
                  "Open-Meteo weather, Electricity Maps carbon intensity, Azure LLM "
                  "inference trace 2023 (conversation).",
        "regions": regions,
        "arrivals": fit_burstiness(conv),
    }
    atomic_write_text(out, json.dumps(params, indent=1) + "\n")
    for r, p in regions.items():
        s = p["price"]["seasons"]
        print(f"{r:6s} price level (JJA) ${np.exp(s['JJA']['log_level_mu']):.1f}/MWh, "
              f"spike rate JJA {s['JJA']['spike_prob']:.4f}/h, "
              f"max spike ratio {p['price']['spike_ratio_quantiles'][-1]}")
    print("arrivals", params["arrivals"])
    print("wrote", out)


if __name__ == "__main__":
    main()
