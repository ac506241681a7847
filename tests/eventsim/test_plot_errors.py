"""Plot functions refuse bad arguments with one named error."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from eventsim import plot  # noqa: E402


def _recording(T=6, B=3, k=2, n_out=4):
    rng = np.random.default_rng(0)
    spikes = {1: SimpleNamespace(sample=np.array([0, 2]), t=np.array([1, 3]), neuron=np.array([0, 1]))}
    return SimpleNamespace(spikes=spikes, membrane={1: rng.normal(size=(T, B, k))},
                           readout=rng.normal(size=(T, B, n_out)), predictions=np.zeros(B, int))


@pytest.mark.parametrize("sample", [3, 99, -1])
def test_plot_recording_names_the_valid_sample_range(sample):
    with pytest.raises(ValueError, match=rf"plot_recording: sample {sample} outside \[0, 3\) "
                                         r"\(the recording holds 3 samples\)"):
        plot.plot_recording(_recording(), sample=sample)


def test_plot_recording_sample_range_from_batch_size_or_membrane():
    rec = _recording()
    spikes_only = SimpleNamespace(spikes=rec.spikes, membrane={}, readout=None, batch_size=3)
    with pytest.raises(ValueError, match=r"sample 5 outside \[0, 3\)"):
        plot.plot_recording(spikes_only, sample=5)
    no_readout = SimpleNamespace(spikes=rec.spikes, membrane=rec.membrane, readout=None)
    with pytest.raises(ValueError, match=r"sample 3 outside \[0, 3\)"):
        plot.plot_recording(no_readout, sample=3)
    with pytest.raises(ValueError, match=r"sample must be an integer, got 1.5"):
        plot.plot_recording(rec, sample=1.5)
    assert len(plot.plot_recording(rec, sample=2).axes) == 3


@pytest.mark.parametrize("dt", [-1.0, 0, float("nan"), float("inf"), "1ms"])
def test_raster_and_membrane_refuse_bad_dt(dt):
    with pytest.raises(ValueError, match=r"raster: dt must be a finite step length > 0 or None"):
        plot.raster(np.array([0, 1]), np.array([0, 1]), dt=dt)
    with pytest.raises(ValueError, match=r"membrane: dt must be a finite step length > 0 or None, got"):
        plot.membrane(np.zeros(5), dt=dt)
    with pytest.raises(ValueError, match=r"plot_recording: dt must be"):
        plot.plot_recording(_recording(), dt=dt)


def test_valid_dt_is_accepted():
    plot.raster(np.array([0, 1]), np.array([0, 1]), dt=1e-3, rate_panel=True)
    plot.membrane(np.zeros(5), dt=0.5)
