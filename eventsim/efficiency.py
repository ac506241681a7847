"""Efficiency report: synaptic operations, dense operation counts, firing rates, neuron
updates and an energy estimate, per layer and per sample, from a simulation.

Definitions (the numbers papers report as SynOps and energy):

- **Synaptic operations** of a projection: one per (non-zero source value, synapse) pair it
  delivers, per step, exactly what ``Recording.synaptic_events`` counts (fan-outs exact at
  conv borders; delayed connections deliver the spikes that arrive before the last step).
  A projection whose source values are spikes (0/1, or -1/0/1 of ternary layers, and 0/1
  input) performs *accumulates* (AC); one whose source values are graded (an analog input
  current, the output of an average pooling feeding a convolution) performs
  *multiply-accumulates* (MAC).
- **Dense operations**: what a dense (clock-driven) execution of the same projection does at
  every step whatever the activity: Dense ``n_in n_out``, Sparse its non-zeros, Conv2d
  ``H_out W_out C_out C_in k_h k_w`` (padding taps included), pooling ``H_out W_out C k_h
  k_w``, times T; all MACs.
- **Firing rate** of a spiking layer: spikes / (neurons x T), per sample.
- **Neuron updates**: dense, every neuron at every step (``n T``); event-driven, the neurons
  whose state the event loop computed (the simulator's profile counters).
- **Energy**: synaptic operations times a replaceable cost table (:class:`CostTable`,
  default 45 nm CMOS: 0.9 pJ per 32-bit float accumulate, 4.6 pJ per multiply-accumulate).
  Memory traffic (weight and state reads and writes), which often dominates on real
  hardware, is not counted; neither are neuron updates unless the table gives them a cost.

Counts per sample are computed from the recorded spikes and the input (the source activity
of each projection times its fan-outs, ``eventsim.synops``); their sum over the batch is
checked against the event loop's own counts (``EfficiencyReport.kernel_counts``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from snncore import modelfile as mf

from .inputs import EventBatch, to_dense
from .synops import chain_counts

PROJECTIONS = (mf.Dense, mf.Sparse, mf.Conv2d, mf.AvgPool2d, mf.MaxPool2d)


@dataclass(frozen=True)
class CostTable:
    """Energy per operation in picojoules.  Default: 45 nm CMOS, 32-bit float (0.9 pJ per
    add, 4.6 pJ per multiply-accumulate: 3.7 pJ multiply + 0.9 pJ add)."""
    ac_pj: float = 0.9
    mac_pj: float = 4.6
    neuron_update_pj: float = 0.0
    name: str = "45 nm CMOS, float32 (add 0.9 pJ, multiply 3.7 pJ)"

    def __post_init__(self):
        for f in ("ac_pj", "mac_pj", "neuron_update_pj"):
            v = getattr(self, f)
            if not isinstance(v, (int, float, np.floating, np.integer)) or not np.isfinite(v) \
                    or v < 0:
                raise ValueError(f"CostTable.{f}: must be a finite number >= 0, got {v!r}")


def dense_ops(rec, in_shape: tuple, out_shape: tuple) -> int:
    """Operations per step of projection record ``rec`` applied densely."""
    if isinstance(rec, mf.Dense):
        return int(np.prod(in_shape)) * int(np.prod(out_shape))
    if isinstance(rec, mf.Sparse):
        return int(len(rec.indices))
    if isinstance(rec, mf.Conv2d):
        co, ci, kh, kw = rec.weight.shape
        return int(out_shape[1] * out_shape[2] * co * ci * kh * kw)
    kh, kw = tuple(rec.kernel)
    return int(np.prod(out_shape) * kh * kw)


@dataclass
class EfficiencyReport:
    """The result of :func:`efficiency_report` (means per sample are computed from the
    per-sample counts, so reports of consecutive batches join with :meth:`concatenate`).

    Attributes:
        T: steps simulated.
        costs: the :class:`CostTable` used.
        projection_info: per projection (model order, then delayed connections): ``label``
            ("layers[i]" / "connections[k]"), ``kind``, ``op`` ("AC"/"MAC"), ``dense_ops``
            (per sample).
        population_info: per spiking layer and the readout: ``label``, ``neurons``,
            ``spiking``.
        per_sample: ``{projection label: synaptic operations [B] int64}``.
        spikes_per_sample: ``{population label: spikes [B] int64}``.
        updates_event: ``{population label: neuron updates of the whole batch}`` (the event
            loop's profile counters).
        kernel_counts: the event loop's ``synaptic_events`` of the batch (the check).
    """
    T: int
    costs: CostTable
    projection_info: list
    population_info: list
    per_sample: dict
    spikes_per_sample: dict
    updates_event: dict
    kernel_counts: dict

    @property
    def batch_size(self) -> int:
        arrays = list(self.per_sample.values()) + list(self.spikes_per_sample.values())
        return int(len(arrays[0])) if arrays else 0

    @property
    def projections(self) -> list:
        """Per projection: the info plus ``synops`` (mean per sample), ``energy_pj`` (mean
        per sample) and ``dense_energy_pj`` (the dense count at the MAC cost)."""
        rows = []
        for info in self.projection_info:
            counts = self.per_sample[info["label"]]
            syn = float(counts.mean()) if len(counts) else 0.0
            cost = self.costs.mac_pj if info["op"] == "MAC" else self.costs.ac_pj
            rows.append(dict(info, synops=syn, energy_pj=syn * cost,
                             dense_energy_pj=info["dense_ops"] * self.costs.mac_pj))
        return rows

    @property
    def populations(self) -> list:
        """Per population: the info plus ``spikes`` and ``firing_rate`` (means per sample;
        None for the readout), ``updates_dense`` (n T) and ``updates_event`` (mean per
        sample, None without profile counters)."""
        B = self.batch_size
        rows = []
        for info in self.population_info:
            label, n = info["label"], info["neurons"]
            spikes = (float(self.spikes_per_sample[label].mean())
                      if info["spiking"] and B else None)
            ev = self.updates_event.get(label)
            rows.append(dict(info, spikes=spikes,
                             firing_rate=None if spikes is None else spikes / (n * self.T),
                             updates_dense=n * self.T,
                             updates_event=None if ev is None or not B else ev / B))
        return rows

    @property
    def totals(self) -> dict:
        """``synops``, ``ac``, ``mac``, ``dense_ops``, ``energy_pj``, ``dense_energy_pj``
        (means per sample) and ``energy_ratio`` (dense / event-driven)."""
        proj, pops, c = self.projections, self.populations, self.costs
        ac = sum(p["synops"] for p in proj if p["op"] == "AC")
        mac = sum(p["synops"] for p in proj if p["op"] == "MAC")
        dense = sum(p["dense_ops"] for p in proj)
        upd = sum(p["updates_event"] or 0.0 for p in pops)
        energy = ac * c.ac_pj + mac * c.mac_pj + upd * c.neuron_update_pj
        dense_energy = dense * c.mac_pj + sum(p["updates_dense"] for p in pops) \
            * c.neuron_update_pj
        return dict(synops=ac + mac, ac=ac, mac=mac, dense_ops=dense, energy_pj=energy,
                    dense_energy_pj=dense_energy,
                    energy_ratio=dense_energy / energy if energy else None)

    @staticmethod
    def concatenate(reports: list) -> "EfficiencyReport":
        """One report of consecutive batches' reports (same model, T and costs)."""
        if not reports:
            raise ValueError("EfficiencyReport.concatenate: no reports given")
        first = reports[0]
        for r in reports[1:]:
            if (r.T, r.costs, r.projection_info, r.population_info) != \
                    (first.T, first.costs, first.projection_info, first.population_info):
                raise ValueError("EfficiencyReport.concatenate: the reports are of different "
                                 "models, T or cost tables")

        def join(field_):
            return {k: np.concatenate([getattr(r, field_)[k] for r in reports])
                    for k in getattr(first, field_)}

        def add(field_):
            keys = set().union(*(getattr(r, field_) for r in reports))
            return {k: sum(getattr(r, field_).get(k, 0) for r in reports) for k in keys}

        return EfficiencyReport(T=first.T, costs=first.costs,
                                projection_info=first.projection_info,
                                population_info=first.population_info,
                                per_sample=join("per_sample"),
                                spikes_per_sample=join("spikes_per_sample"),
                                updates_event=add("updates_event"),
                                kernel_counts=add("kernel_counts"))

    def to_dict(self) -> dict:
        """JSON-ready (lists and plain numbers)."""
        return dict(T=self.T, batch_size=self.batch_size, projections=self.projections,
                    populations=self.populations, totals=self.totals,
                    kernel_counts={k: int(v) for k, v in self.kernel_counts.items()},
                    costs=dict(ac_pj=self.costs.ac_pj, mac_pj=self.costs.mac_pj,
                               neuron_update_pj=self.costs.neuron_update_pj,
                               name=self.costs.name),
                    note="energy counts synaptic operations (and neuron updates if costed) "
                         "only; memory traffic is not counted")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def format(self) -> str:
        """A plain-text table (means per sample)."""
        lines = [f"Efficiency per sample (T = {self.T}, {self.batch_size} samples; energy: "
                 f"{self.costs.name}; memory traffic not counted)", "",
                 f"{'projection':<18}{'kind':<11}{'op':<5}{'synops':>13}{'dense ops':>13}"
                 f"{'dense/syn':>10}{'energy nJ':>11}{'dense nJ':>10}"]
        for r in self.projections:
            ratio = r["dense_ops"] / r["synops"] if r["synops"] else float("inf")
            lines.append(f"{r['label']:<18}{r['kind']:<11}{r['op']:<5}{r['synops']:>13.4g}"
                         f"{r['dense_ops']:>13.4g}{ratio:>10.2f}{r['energy_pj'] / 1e3:>11.4g}"
                         f"{r['dense_energy_pj'] / 1e3:>10.4g}")
        t = self.totals
        lines += [f"{'total':<34}{t['synops']:>13.4g}{t['dense_ops']:>13.4g}"
                  f"{(t['dense_ops'] / t['synops'] if t['synops'] else float('inf')):>10.2f}"
                  f"{t['energy_pj'] / 1e3:>11.4g}{t['dense_energy_pj'] / 1e3:>10.4g}", "",
                  f"{'population':<18}{'neurons':>9}{'rate':>9}{'spikes':>11}"
                  f"{'updates dense':>15}{'updates event':>15}"]
        for p in self.populations:
            rate = "-" if p["firing_rate"] is None else f"{100 * p['firing_rate']:.2f}%"
            spikes = "-" if p["spikes"] is None else f"{p['spikes']:.4g}"
            ev = "-" if p["updates_event"] is None else f"{p['updates_event']:.4g}"
            lines.append(f"{p['label']:<18}{p['neurons']:>9}{rate:>9}{spikes:>11}"
                         f"{p['updates_dense']:>15.4g}{ev:>15}")
        return "\n".join(lines)


def _edges(model) -> list:
    """``(label positions, source layer or None, chain records, chain layer indices, target)``
    of every feed-forward edge (the projections between two populations, or the input and
    the first population)."""
    edges, src, chain = [], None, []
    for i, layer in enumerate(model.layers):
        if isinstance(layer, PROJECTIONS + (mf.Flatten,)):
            chain.append(i)
        else:
            edges.append((src, chain, i))
            src, chain = i, []
    return edges


def efficiency_report(model, x, *, costs: CostTable | None = None, T: int | None = None,
                      **sim_options) -> EfficiencyReport:
    """Simulate ``x`` (an EventBatch or a dense ``[T, B, *input_shape]`` array) with
    ``eventsim.Simulator(model, profile=True, **sim_options)`` and count its operations.

    Returns an :class:`EfficiencyReport`; raises ``RuntimeError`` if the per-sample counts
    disagree with the event loop's (a bug, never expected)."""
    from .simulator import Simulator

    costs = CostTable() if costs is None else costs
    if not isinstance(costs, CostTable):
        raise TypeError(f"efficiency_report: costs must be a CostTable, got {type(costs).__name__}")
    sim = Simulator(model, profile=True, **sim_options)
    rec = sim.run(x, T=T)
    net = sim.network
    mdl = net.model
    T, B = rec.readout.shape[:2]
    if isinstance(x, EventBatch):
        source_in = to_dense(x, dtype=np.float64)[:T]
    else:
        source_in = np.broadcast_to(np.asarray(x), (T,) + np.asarray(x).shape[1:])
    shapes = [tuple(net.input_shape)] + [tuple(s) for s in net.shapes]

    def activity(layer):
        if layer is None:
            return source_in
        return rec.spikes[layer].to_dense().reshape((T, B) + shapes[layer + 1])

    info, per_sample = [], {}

    def add(label, rec_, counts, mac, dense):
        per_sample[label] = counts
        info.append(dict(label=label, kind=rec_.kind, op="MAC" if mac else "AC",
                         dense_ops=int(dense)))

    for src, chain, _ in _edges(mdl):
        if not chain:
            continue
        recs = [mdl.layers[i] for i in chain]
        sh = [shapes[chain[0]]] + [shapes[i + 1] for i in chain]
        for j, counts, mac in chain_counts(recs, sh, activity(src)):
            i = chain[j]
            add(f"layers[{i}]", mdl.layers[i], counts, mac,
                T * dense_ops(mdl.layers[i], shapes[i], shapes[i + 1]))
    for k, c in enumerate(mdl.connections):
        s, t = int(c.source), int(c.target)
        sh = [shapes[s + 1], shapes[t + 1]]
        (_, counts, mac), = chain_counts([c.projection], sh, activity(s),
                                         until=T - int(c.delay))
        add(f"connections[{k}]", c.projection, counts, mac,
            T * dense_ops(c.projection, shapes[s + 1], shapes[t + 1]))

    kernel = {k: int(v) for k, v in rec.synaptic_events.items() if k != "total"}
    mine = {k: int(v.sum()) for k, v in per_sample.items()}
    if {k: v for k, v in kernel.items() if v} != {k: v for k, v in mine.items() if v}:
        raise RuntimeError(f"efficiency_report: per-sample counts {mine} disagree with the "
                           f"event loop's {kernel}")

    updates = {}
    for row in sim.last_profile or []:
        updates[row["where"]] = updates.get(row["where"], 0) + int(row["neuron_updates"])
    pops, spikes = [], {}
    for layer in net.pop_layers:
        label = f"layers[{layer}]"
        spiking = layer in rec.spikes
        pops.append(dict(label=label, neurons=net.layer_size(layer), spiking=spiking))
        if spiking:
            spikes[label] = np.bincount(rec.spikes[layer].sample, minlength=B).astype(np.int64)
    return EfficiencyReport(T=T, costs=costs, projection_info=info, population_info=pops,
                            per_sample=per_sample, spikes_per_sample=spikes,
                            updates_event={k: v for k, v in updates.items()
                                           if k in {p["label"] for p in pops}},
                            kernel_counts=kernel)
