"""Activity-sequence decoding: transition counts, the model made from them, the causal forward filter."""

import numpy as np
import pytest

from sdk.decoding import ForwardFilter, TransitionModel, decode, transition_counts


def test_counts_start_each_recording_and_never_cross_one():
    labels = [0, 0, 1, 1, 2, 1, 1]
    recordings = [7, 7, 7, 7, 7, 8, 8]
    counts = transition_counts(labels, recordings, 3)
    assert counts[0].tolist() == [1, 1, 0]  # recording 7 starts at 0, recording 8 at 1
    assert counts[1 + 0].tolist() == [1, 1, 0]
    assert counts[1 + 1].tolist() == [0, 2, 1]  # 1->1 twice (one in each recording), 1->2 once
    assert counts[1 + 2].tolist() == [0, 0, 0]  # 2 is last of recording 7: it is followed by nothing
    assert counts.sum() == len(labels)  # every window is a start or follows another


def test_counts_refuse_labels_out_of_range_and_mismatched_ids():
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        transition_counts([0, 3], [1, 1], 3)
    with pytest.raises(ValueError, match="sequence ids"):
        transition_counts([0, 1], [1], 3)


def test_model_from_summed_counts_is_smoothed_and_normalised():
    counts = transition_counts([0, 0, 1], [1, 1, 1], 2) + transition_counts([1, 1], [2, 2], 2)
    model = TransitionModel.from_counts(counts)
    assert np.allclose(model.transitions.sum(axis=1), 1) and model.transitions.min() > 0
    assert model.start == pytest.approx([2 / 4, 2 / 4])  # one start each, plus one
    with pytest.raises(ValueError, match="classes \\+ 1"):
        TransitionModel.from_counts(np.ones((2, 2)))
    with pytest.raises(ValueError, match="non-negative"):
        TransitionModel.from_counts(-np.ones((3, 2)))


def sticky(classes=3, stay=0.9):
    transitions = np.full((classes, classes), (1 - stay) / (classes - 1))
    np.fill_diagonal(transitions, stay)
    return TransitionModel(np.full(classes, 1 / classes), transitions)


def test_filter_overrules_a_weak_isolated_flip_but_follows_a_lasting_change():
    probs = np.array([[0.9, 0.05, 0.05]] * 4 + [[0.4, 0.55, 0.05]] + [[0.9, 0.05, 0.05]] * 2
                     + [[0.1, 0.85, 0.05]] * 4)
    decoded = decode(probs, np.zeros(len(probs)), sticky())
    assert np.argmax(probs, 1)[4] == 1 and np.argmax(decoded, 1)[4] == 0
    assert np.argmax(decoded, 1)[-3:].tolist() == [1, 1, 1]


def test_decoding_is_causal_streams_and_restarts_with_each_recording():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=12)
    recordings = np.repeat([1, 2], 6)
    model = sticky()
    decoded = decode(probs, recordings, model)
    changed = probs.copy()
    changed[8:] = rng.dirichlet(np.ones(3), size=4)
    assert np.allclose(decode(changed, recordings, model)[:8], decoded[:8])  # later windows change nothing before
    stream = ForwardFilter(model)
    assert np.allclose([stream.update(p) for p in probs[:6]], decoded[:6])
    assert np.allclose(decode(probs[6:], recordings[6:], model), decoded[6:])  # the second starts afresh
