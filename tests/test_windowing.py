import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdk.windowing import NO_LABEL, StreamWindower, Windows, WindowSpec, majority_label, make_windows


def sine_stream(duration=6.0, rate=103.0, freq=1.3, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(0, duration, 1 / rate)
    t = t + rng.uniform(0, 0.3 / rate, t.size)
    t[0] = 0.0
    values = np.stack([np.sin(2 * np.pi * freq * t + c) for c in range(6)], axis=1)
    return t, values


def test_resampling_a_known_sine_recovers_it_on_the_50hz_grid():
    t, values = sine_stream()
    w = make_windows(t, values)
    assert w.data.shape[1:] == (50, 6)
    grid = w.start_s[:, None] + np.arange(50)[None, :] / 50.0
    expected = np.sin(2 * np.pi * 1.3 * grid)
    assert np.max(np.abs(w.data[:, :, 0] - expected)) < 2e-3
    # 50% overlap: each window starts half a window after the previous one
    assert np.allclose(np.diff(w.start_s), 0.5)
    assert np.array_equal(w.data[1, :25], w.data[0, 25:])


def test_window_count_follows_duration():
    t = np.arange(0, 10.0, 0.01)
    w = make_windows(t, np.zeros((t.size, 6)))
    # 10 s at 50 Hz is 500 grid samples: windows start every 25 samples
    assert len(w) == (500 - 50) // 25 + 1


def test_stream_is_split_at_gaps_longer_than_half_a_second():
    a = np.arange(0, 2.0, 0.01)
    b = np.arange(2.7, 4.7, 0.01)  # 0.7 s gap
    t = np.concatenate([a, b])
    w = make_windows(t, np.ones((t.size, 6)))
    # each 2 s piece gives 100 grid samples -> 3 windows; none spans the gap
    assert len(w) == 6
    assert not np.any((w.start_s < 2.0) & (w.start_s + 1.0 > 2.0))
    assert np.isclose(w.start_s[3], b[0])


def test_short_gap_is_interpolated_across():
    t = np.concatenate([np.arange(0, 2.0, 0.01), np.arange(2.4, 4.0, 0.01)])
    v = np.repeat(t[:, None], 6, axis=1)
    w = make_windows(t, v)
    assert np.allclose(np.diff(w.start_s), 0.5)
    grid = w.start_s[:, None] + np.arange(50)[None, :] / 50.0
    assert np.allclose(w.data[:, :, 0], grid, atol=1e-5)  # linear signal stays linear


def test_window_label_is_the_majority_label():
    t = np.arange(0, 1.0, 0.005)
    labels = np.where(t < 0.6, 2, 4)
    w = make_windows(t, np.zeros((t.size, 6)), labels)
    assert w.labels.tolist() == [2]
    assert w.label_share.tolist() == [0.6]  # 30 of the 50 resampled samples
    assert majority_label(np.array([1, 1, 3, 3, 3, NO_LABEL, NO_LABEL, NO_LABEL, NO_LABEL]))[0] == 3
    assert majority_label(np.array([0, 1, 1, 0]))[0] == 0  # tie -> smaller index
    assert majority_label(np.array([NO_LABEL]))[0] == NO_LABEL
    assert majority_label(np.array([1, 1, 3, 3, 3, NO_LABEL]))[1] == 0.6
    assert np.isnan(majority_label(np.array([NO_LABEL]))[1])
    assert np.isnan(make_windows(t, np.zeros((t.size, 6))).label_share).all()


def test_repeated_timestamps_are_averaged():
    t = np.array([0.0, 0.0, 0.5, 0.5, 0.5, 1.0, 1.5])
    v = np.zeros((7, 6))
    v[:, 0] = [1, 3, 0, 3, 6, 1, 1]
    windower = StreamWindower(WindowSpec(length=2, rate_hz=2.0))
    w = Windows.concat([windower.push(t, v), windower.flush()], windower.spec)
    assert w.data[0, :, 0].tolist() == [2.0, 3.0]


def test_unlabelled_stream_gives_no_label():
    t, values = sine_stream(duration=2.0)
    assert set(make_windows(t, values).labels.tolist()) == {NO_LABEL}


@pytest.mark.parametrize(
    "t, v, message",
    [
        (np.array([0.0, 0.2, 0.1]), np.zeros((3, 6)), "backwards at sample 2"),
        (np.array([0.0, 0.1]), np.zeros((2, 5)), "shape"),
        (np.array([0.0, 0.1, 0.2]), np.zeros((2, 6)), "3 timestamps but 2 rows"),
        (np.array([0.0, np.nan]), np.zeros((2, 6)), "finite"),
    ],
)
def test_bad_input_is_refused(t, v, message):
    with pytest.raises(ValueError, match=message):
        make_windows(t, v)


def test_backwards_timestamp_across_pushes_is_refused():
    windower = StreamWindower()
    windower.push([0.0, 1.0], np.zeros((2, 6)))
    with pytest.raises(ValueError, match="backwards"):
        windower.push([0.5], np.zeros((1, 6)))


@settings(max_examples=40, deadline=None)
@given(
    cuts=st.lists(st.integers(min_value=1, max_value=400), min_size=0, max_size=12),
    seed=st.integers(min_value=0, max_value=1000),
)
def test_streaming_in_any_chunks_equals_batch(cuts, seed):
    rng = np.random.default_rng(seed)
    n = 900
    t = np.cumsum(rng.choice([0.0, 0.01, 0.0097, 0.012, 0.6], size=n, p=[0.1, 0.4, 0.3, 0.19, 0.01]))
    v = rng.normal(size=(n, 6))
    labels = rng.integers(0, 5, n)
    batch = make_windows(t, v, labels)
    windower = StreamWindower()
    parts, start = [], 0
    for cut in sorted(set(cuts)) + [n]:
        parts.append(windower.push(t[start:cut], v[start:cut], labels[start:cut]))
        start = max(start, cut)
    parts.append(windower.flush())
    stream = Windows.concat(parts, windower.spec)
    assert np.array_equal(batch.data, stream.data)
    assert np.array_equal(batch.labels, stream.labels)
    assert np.array_equal(batch.start_s, stream.start_s)
    assert np.array_equal(batch.label_share, stream.label_share)
    assert len(batch) > 0


def test_window_spec_validates():
    with pytest.raises(ValueError, match="overlap"):
        WindowSpec(overlap=1.0)
    assert WindowSpec(length=128).hop == 64
