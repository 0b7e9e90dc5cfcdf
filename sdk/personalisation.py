"""Local transfer learning: personal layers on the frozen global feature extractor."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sdk.decoding import TransitionModel, decode
from sdk.trainer import TFLiteTrainer


def reset_personal(trainer: TFLiteTrainer) -> None:
    """Personal layers start as copies of the shared layers they mirror (the manifest's layer spec says
    which): the global model's function."""
    manifest = trainer.manifest
    shared = manifest.shared.split(trainer.get_weights("shared"))
    personal = {mine: shared[theirs] for mine, theirs in manifest.spec.personal_copies}
    trainer.set_weights(manifest.personal.join(personal), "personal")


def personalise(trainer: TFLiteTrainer, windows, labels, epochs: int, batch_size: int = 32, lr: float = 0.02,
                momentum: float = 0.9, fresh: bool = True, seed: int = 0, coral: float = 0.0) -> list[float]:
    """Fine-tunes the personal layers only; returns the loss per epoch.

    ``coral`` > 0 adds FedHealth's CORAL term, here aligning the covariance of
    the adapted features with that of the frozen global features on the same
    windows (the device has no source-domain data of its own).
    """
    if fresh:
        reset_personal(trainer)
    history = trainer.fit(windows, labels, epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum,
                          part="personal", seed=seed, coral=coral)
    return history.loss


BLEND_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)  # personal head's share in the probabilities a device uses
MAX_CHECKS = 3  # cross-validation folds at most (recordings dealt into them)


@dataclass(frozen=True)
class HeadChoice:
    """How much of the personal head a device uses: 0 the global head, 1 the personal head, between a
    blend of their probabilities; ``checked_on`` held-out windows decided it (0: it could not tell)."""

    personal_weight: float = 0.0
    checked_on: int = 0


def blend(global_probs, personal_probs, personal_weight: float) -> np.ndarray:
    """The probabilities a device uses: the two heads' mixed by ``personal_weight``."""
    return (1.0 - personal_weight) * np.asarray(global_probs) + personal_weight * np.asarray(personal_probs)


@dataclass(frozen=True)
class HeldOut:
    """Both heads' probabilities on held-out recordings, each fold's apart, with their true labels."""

    global_probs: list[np.ndarray]
    personal_probs: list[np.ndarray]
    recordings: list[np.ndarray]
    labels: np.ndarray


def held_out_heads(trainer: TFLiteTrainer, windows, labels, recordings, epochs: int, batch_size: int = 32,
                   lr: float = 0.02, momentum: float = 0.9, seed: int = 0, coral: float = 0.0,
                   check: tuple | None = None) -> HeldOut | None:
    """Cross-validation over the wearer's recordings (``recordings``: one id per window), at most MAX_CHECKS
    folds: the personal layers learn on the other folds, both heads predict the held-out one. None with
    fewer than two recordings. The trainer's personal weights are left as they were.

    ``check``: (windows, labels, recordings) of the same recordings as the device predicts on, when it
    trains on windows cut otherwise (denser, say); the held-out folds are scored on these. Default: the
    training windows themselves."""
    windows, y = np.asarray(windows, dtype=np.float32), np.asarray(labels).reshape(-1)
    ids = np.asarray(recordings).reshape(-1)
    check_windows, check_y, check_ids = (windows, y, ids) if check is None else (
        np.asarray(check[0], dtype=np.float32), np.asarray(check[1]).reshape(-1), np.asarray(check[2]).reshape(-1))
    distinct = list(dict.fromkeys(ids.tolist()))
    if len(distinct) < 2:
        return None
    if set(check_ids.tolist()) != set(distinct):
        raise ValueError("check windows must come from the recordings the training windows come from")
    kept = trainer.get_weights("personal")
    global_probs, personal_probs, folds = [], [], []
    for held in np.array_split(np.array(distinct), min(MAX_CHECKS, len(distinct))):
        learn = ~np.isin(ids, held)
        personalise(trainer, windows[learn], y[learn], epochs, batch_size, lr, momentum, seed=seed, coral=coral)
        out = np.isin(check_ids, held)
        global_probs.append(trainer.predict_proba(check_windows[out], "global"))
        personal_probs.append(trainer.predict_proba(check_windows[out], "personal"))
        folds.append(out)
    trainer.set_weights(kept, "personal")
    return HeldOut(global_probs, personal_probs, [check_ids[out] for out in folds],
                   np.concatenate([check_y[out] for out in folds]))


def held_out_scores(held_out: HeldOut, transitions: TransitionModel | None = None) -> list[tuple[float, float]]:
    """(accuracy, mean log-likelihood of the true labels) on the held-out recordings for every weight of
    BLEND_WEIGHTS, the blends decoded with ``transitions`` if given (as in use)."""
    def scores(weight: float) -> tuple[float, float]:
        probs = [blend(g, p, weight) for g, p in zip(held_out.global_probs, held_out.personal_probs)]
        if transitions is not None:
            probs = [decode(q, seq, transitions) for q, seq in zip(probs, held_out.recordings)]
        q = np.concatenate(probs)
        truth = q[np.arange(len(q)), held_out.labels]
        return float(np.mean(np.argmax(q, axis=1) == held_out.labels)), float(np.mean(np.log(truth + 1e-6)))

    return [scores(w) for w in BLEND_WEIGHTS]


def best_blend(scores: list[tuple[float, float]], by: str = "likelihood") -> int:
    """The index into BLEND_WEIGHTS that ``scores`` (``held_out_scores``) favour: by mean log-likelihood
    (``by="likelihood"``, steadier on few windows) or by accuracy; ties go to the least personal weight, and a
    blend whose held-out accuracy falls below the global head's is refused (index 0)."""
    if by not in ("likelihood", "accuracy"):
        raise ValueError(f"by must be 'likelihood' or 'accuracy', got {by!r}")
    best = int(np.argmax([s[1] if by == "likelihood" else s[0] for s in scores]))  # first maximum
    return 0 if scores[best][0] < scores[0][0] else best


def pick_weight(held_out: HeldOut | None, transitions: TransitionModel | None = None,
                by: str = "likelihood") -> HeadChoice:
    """The personal weight that does best on the held-out recordings (decoded with ``transitions`` if given,
    as in use; ``best_blend``); nothing held out means the global head."""
    if held_out is None:
        return HeadChoice()
    return HeadChoice(BLEND_WEIGHTS[best_blend(held_out_scores(held_out, transitions), by)],
                      int(held_out.labels.size))


def choose_head(trainer: TFLiteTrainer, windows, labels, recordings, epochs: int, batch_size: int = 32,
                lr: float = 0.02, momentum: float = 0.9, seed: int = 0, coral: float = 0.0,
                transitions: TransitionModel | None = None, check: tuple | None = None) -> HeadChoice:
    """Chooses the personal head's weight from the wearer's labelled windows alone (``held_out_heads``,
    then ``pick_weight``): never from test data, and the global head when it cannot tell."""
    held_out = held_out_heads(trainer, windows, labels, recordings, epochs, batch_size, lr, momentum, seed, coral,
                              check)
    return pick_weight(held_out, transitions)


def predict_blended(trainer: TFLiteTrainer, windows, choice: HeadChoice) -> np.ndarray:
    """Class probabilities of the heads as ``choice`` blends them."""
    if choice.personal_weight == 0.0:
        return trainer.predict_proba(windows, "global")
    return blend(trainer.predict_proba(windows, "global"), trainer.predict_proba(windows, "personal"),
                 choice.personal_weight)
